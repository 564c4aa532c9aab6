#!/usr/bin/env python3
"""make_tokenizer_golden.py: small byte-level BPE tokenizers in the Qwen2 and Llama 3 formats, and
the ids Hugging Face `tokenizers` / `transformers` give for them, so rusca's own BPE and chat
templates can be checked exactly without downloading a real model.

For each family this writes tests/golden/tokenizers/<family>/:
  tokenizer.json         trained here with `tokenizers` on tools/tokenizer_corpus.txt + data/tiny_corpus.txt,
                         with the family's exact pre-tokenizer regex, normalizer, special tokens
  tokenizer_config.json  bos/eos/pad and the family's official chat_template (as in the HF repos)
  cases.json             {"encode": [{"text", "ids", "decoded"}], "decode": [{"ids", "text"}],
                          "chat": [{"messages", "add_generation_prompt", "text", "ids"}]}
Families:
  qwen2   Qwen2/2.5/3 pre-tokenizer (single digits), NFC normalizer, Qwen2.5-Instruct's template
          (adds "You are Qwen, created by Alibaba Cloud..." when no system turn is given)
  qwen3   the Qwen2 tokenizer with Qwen3's template (no default system turn; its tool-call branch is
          replaced by an exception)
  llama3  Llama 3 pre-tokenizer (digits in runs of up to 3), ignore_merges, Llama-3-Instruct template
  llama31 the same tokenizer with Llama-3.1-Instruct's template (a dated system header, always);
          its tool-call branch is replaced by an exception (tools are not rendered by rusca)
  llama2  the llama3 BPE with <s>/</s> and Llama-2-chat's [INST] template (checks the template only;
          real Llama 2 tokenizers are sentencepiece .model files)
Extra added tokens exercise the flags real files may set: a normalized one matched after NFC
(qwen2), lstrip/rstrip and single_word ones (llama2).
Needs only `pip install tokenizers transformers jinja2` (no torch). Re-running gives identical files.

Run:  python3 tools/make_tokenizer_golden.py [--out tests/golden/tokenizers]
"""
import argparse
import json
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Qwen2.5-7B-Instruct's chat_template, verbatim.
QWEN25_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# Qwen3's chat_template (as released with Qwen3-8B), verbatim: no default system turn; thinking
# is stripped from earlier assistant turns; enable_thinking=False would add an empty think block.
QWEN3_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {{- raise_exception("tool calls are not part of this golden") }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

# Meta-Llama-3-8B-Instruct's chat_template, verbatim.
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                   "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
                   "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                   "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# Llama-3.1-8B-Instruct's chat_template, verbatim: a system header with a date is always rendered.
LLAMA31_TEMPLATE = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {{- raise_exception("tool calls are not part of this golden") }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Llama-2-7b-chat-hf's chat_template, verbatim.
LLAMA2_TEMPLATE = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
                   "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
                   "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
                   "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                   "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                   "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
                   "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
                   "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
                   "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
                   "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

FAMILIES = {
    # name: pattern, NFC?, ignore_merges, special tokens (first ids), non-special added, config, template
    "qwen2": dict(pattern=QWEN2_PATTERN, nfc=True, ignore_merges=False,
                  special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                  added=[dict(content="<tool_call>"), dict(content="</tool_call>"),
                         dict(content="<caf\u00e9>", normalized=True)],  # matched after NFC
                  config={"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
                  template=QWEN25_TEMPLATE),
    "qwen3": dict(pattern=QWEN2_PATTERN, nfc=True, ignore_merges=False,
                  special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], added=[],
                  config={"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
                  template=QWEN3_TEMPLATE),
    "llama3": dict(pattern=LLAMA3_PATTERN, nfc=False, ignore_merges=True,
                   special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                            "<|eot_id|>"], added=[],
                   config={"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None},
                   template=LLAMA3_TEMPLATE),
    "llama31": dict(pattern=LLAMA3_PATTERN, nfc=False, ignore_merges=True,
                    special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                             "<|eot_id|>"], added=[],
                    config={"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None},
                    template=LLAMA31_TEMPLATE),
    "llama2": dict(pattern=LLAMA3_PATTERN, nfc=False, ignore_merges=True, special=["<unk>", "<s>", "</s>"],
                   added=[dict(content="<mask>", lstrip=True, rstrip=True, special=True),
                          dict(content="[SEP]", single_word=True)],
                   config={"bos_token": "<s>", "eos_token": "</s>", "pad_token": None, "unk_token": "<unk>"},
                   template=LLAMA2_TEMPLATE),
}

# Strings whose ids are recorded: every script, whitespace shape and special-token position we rely on.
ENCODE_TEXTS = [
    "Hello world", "Mira has a red cat.", "  leading spaces", "trailing spaces   ", "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four\r\nwindows", "\n\n\n", "   \n  \n", " ", "", "a  b   c    d",
    "I'm sure they'll say it's fine, we've done it, you'd agree, I'D SAY IT'S OK", "don't can't won't",
    "numbers 1 12 123 1234 12345 3.14159 -42 1,000,000 2026-12-01", "x1y22z333",
    "안녕하세요, 세계! 한국어 문장입니다.", "你好，世界。这是一个中文句子。", "日本語のテキスト", "Ünïcödé café naïve",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flag 🇰🇷", "math ∑∫√ ≤≥ ≠", "e\u0301 composed vs \u00e9",  # NFC folds e+◌́ (qwen2)
    "def f(x):\n    return x * 2  # double\n\n\nclass A:\n\tpass\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "text<|im_end|>more<|endoftext|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<s>[INST] hi [/INST] ok </s>",
    "<tool_call>{\"a\": 1}</tool_call>", "almost <|im_start special|> not a token", "<|im_end|><|im_end|>",
    "The patient has a fever of 39°C; recommend fluids & rest — see a doctor if it persists >3 days.",
    "WHO's ‘guidelines’ say “drink water”…", "x <cafe\u0301> y <caf\u00e9>", "fill  <mask>  here\n<mask>",
    "a [SEP] b a[SEP]b [SEP]",
    # whitespace and letter/number classes where regex engines could differ (\s, \p{L}, \p{N})
    "a\u0085b x \u2028\u2029 y p\u180eq \u001c\u001d z a\u000bb\u000cc 1\u2009000 a \u200a b a\u2066b\u2069",
    "١٢٣ ٤٥ Ⅻ x²³ y₁ ǅungla ʰmod 'S 'LL 'Re don't'll \r\n\r\n  \r", "\u00a0non-breaking\u3000ideographic space", "a\u200bzero width",
]

CHATS = [
    [{"role": "user", "content": "Hello, how are you?"}],
    [{"role": "system", "content": "Follow the rubric: cite sources."}, {"role": "user", "content": "What is a fever?"}],
    [{"role": "user", "content": "  padded question \n"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me about 감기 and 发烧."}],
    [{"role": "system", "content": "Rubric:\n1. Mentions hydration\n2. Advises a doctor"},
     {"role": "user", "content": "My child has a fever."}, {"role": "assistant", "content": "Give fluids."},
     {"role": "user", "content": "Anything else?"}],
]


def read_corpus(root):
    lines = []
    for path in ["tools/tokenizer_corpus.txt", "data/tiny_corpus.txt"]:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            lines += [line.rstrip("\n") for line in f]
    return lines


def train(fam, corpus, vocab_size):
    tok = Tokenizer(models.BPE(ignore_merges=fam["ignore_merges"]))
    if fam["nfc"]:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(fam["pattern"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[AddedToken(s, special=True, normalized=False) for s in fam["special"]])
    tok.train_from_iterator(corpus, trainer=trainer)
    for a in fam["added"]:
        a = {"special": False, "normalized": False, **a}
        (tok.add_special_tokens if a["special"] else tok.add_tokens)([AddedToken(**a)])
    return tok


def chat_cases(tok_dir, fam):
    from transformers import PreTrainedTokenizerFast
    hf = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    cases = []
    for messages in CHATS:
        if fam is FAMILIES["llama2"] and messages[-1]["role"] != "user":
            continue
        for gen in [True, False]:
            text = hf.apply_chat_template(messages, add_generation_prompt=gen, tokenize=False)
            ids = hf.apply_chat_template(messages, add_generation_prompt=gen, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            cases.append({"messages": messages, "add_generation_prompt": gen, "text": text, "ids": list(ids)})
    return cases


def decode_cases(tok):
    # Byte-level pieces that split a multi-byte character: HF replaces the broken bytes with U+FFFD.
    cases = []
    for text in ["안녕", "😀 ok", "你好 world", "é"]:
        ids = tok.encode(text).ids
        for cut in [ids[:1], ids[1:], ids[::-1], ids]:
            cases.append({"ids": cut, "text": tok.decode(cut, skip_special_tokens=False)})
    byte_ids = [tok.token_to_id(c) for c in pre_tokenizers.ByteLevel.alphabet()]
    cases.append({"ids": sorted(byte_ids)[:40], "text": tok.decode(sorted(byte_ids)[:40], skip_special_tokens=False)})
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/golden/tokenizers")
    ap.add_argument("--vocab", type=int, default=1500)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    corpus = read_corpus(root)
    for name, fam in FAMILIES.items():
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        tok = train(fam, corpus, args.vocab)
        tok.save(os.path.join(out, "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 32768,
                  "clean_up_tokenization_spaces": False, "chat_template": fam["template"], **fam["config"]}
        with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, ensure_ascii=False)
        encode = []
        for t in ENCODE_TEXTS:
            ids = tok.encode(t, add_special_tokens=False).ids
            encode.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
        cases = {"encode": encode, "decode": decode_cases(tok), "chat": chat_cases(out, fam)}
        with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, indent=1, ensure_ascii=False)
        print(f"{out}: vocab {tok.get_vocab_size()}, {len(encode)} encode, {len(cases['decode'])} decode, "
              f"{len(cases['chat'])} chat cases")


if __name__ == "__main__":
    main()
