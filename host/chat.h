// chat.h: chat templates, rendered natively for the families we support, chosen from the
// tokenizer's folder (tokenizer_config.json's chat_template; without one, from which chat markers
// the vocabulary holds). Token ids equal transformers' apply_chat_template (checked in
// tests/test_chat.cpp against ids recorded by tools/make_tokenizer_golden.py).
//   ChatML (Qwen, our tiny tokenizer):  <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n
//       Qwen2.5's template adds a default system turn ("You are Qwen, ...") when none is given.
//   Llama 3:  <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>...
//       Llama 3.1+ always opens with a system turn headed "Cutting Knowledge Date: ...\nToday Date: ...";
//       the system text (scaffold) goes after that header.
//   Llama 2:  <s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nHi [/INST]
// RuscaRL's scaffold is a system turn placed BEFORE the prompt's own turns: prefix tokens
// (BOS, then the scaffold turn, or the template's default system turn when there is no scaffold)
// followed by prompt tokens that never change, so rollouts with different scaffolds share the
// prompt. A scaffold replaces Qwen2.5's default system turn; it never follows it.
#pragma once
#include <string>
#include <vector>

#include "rubric.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

enum class ChatFamily { ChatML, Llama3, Llama2 };

struct ChatFormat {
    ChatFamily family = ChatFamily::ChatML;
    std::string default_system;  // rendered when the conversation has no system turn ("" = none)
    // Llama 3.1+: the text that opens every system turn (with the template's date, or today's when
    // the template calls strftime_now, as transformers does); "" for Llama 3.0.
    std::string system_header;
};

// The format of `tok`'s folder; an unrecognised or unsupported chat_template is an Error.
ChatFormat chat_format(const Tokenizer& tok);

// The whole conversation as apply_chat_template(messages, add_generation_prompt) renders it:
// as text (tokenize=False) and as ids (tokenize=True).
std::string render_chat(const Tokenizer& tok, const std::vector<Message>& messages, bool add_generation_prompt);
std::vector<int> chat_tokens(const Tokenizer& tok, const std::vector<Message>& messages, bool add_generation_prompt);

// Prompt tokens ready for generation: the prompt's own turns and the assistant turn's opening,
// without BOS or any system turn added by the template (Llama 2: the turns after the first).
std::vector<int> chat_prompt_tokens(const Tokenizer& tok, const std::vector<Message>& messages);
// What goes before the prompt tokens: BOS (if the template uses it), then a system turn holding
// `system_text` (the scaffold); with no system_text, the template's default system turn unless
// `prompt` opens with its own system turn. prefix + prompt tokens == chat_tokens of
// [system_text] + prompt. Llama 2 has no system turn: the system text opens the first user turn, so
// there the prefix is that whole first user turn (scaffold first, then the prompt's own system
// text) and the prompt tokens are the turns after it (none for a one-turn prompt). Llama 3.1+ with
// a prompt that has its own system turn: that turn stays in the prompt tokens as an ordinary turn
// after the dated system turn (the template would merge it into the dated turn, which would change
// the prompt tokens between scaffolded and bare rollouts).
std::vector<int> chat_prefix_tokens(const Tokenizer& tok, const std::string& system_text,
                                    const std::vector<Message>& prompt = {});
// Tokens that end an assistant turn: the family's end-of-turn marker, EOS, and
// generation_config.json's eos ids.
std::vector<int> chat_stop_tokens(const Tokenizer& tok);

}  // namespace rusca
