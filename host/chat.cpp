// chat.cpp: ChatML, Llama 3 and Llama 2 chat templates rendered natively (see chat.h).
// A conversation is rendered to parts, each either text (encoded with special tokens recognised)
// or one id (BOS/EOS, which a sentencepiece model would not recognise in text); ids and text
// then come from the same parts.
#include "chat.h"

#include <algorithm>
#include <ctime>

#include "error.h"

namespace rusca {

namespace {

struct Part {
    int id = -1;       // a single token, or -1 for text
    std::string text;
};
using Parts = std::vector<Part>;

void add_text(Parts& p, const std::string& s) { p.push_back({-1, s}); }
void add_id(Parts& p, int id) {
    if (id >= 0) p.push_back({id, ""});
}

// Jinja's trim / Python's str.strip(): whitespace as Python defines it, at both ends.
bool is_py_space(uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
// The code point starting at s[i] and its length (1 for an invalid byte).
std::pair<uint32_t, size_t> code_point(const std::string& s, size_t i) {
    const uint8_t c = uint8_t(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n == 1 || i + n > s.size()) return {c, 1};
    uint32_t cp = c & (0xFF >> (n + 1));
    for (size_t k = 1; k < n; k++) cp = cp << 6 | (uint8_t(s[i + k]) & 0x3F);
    return {cp, n};
}
std::string py_strip(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e) {
        const auto [cp, n] = code_point(s, b);
        if (!is_py_space(cp)) break;
        b += n;
    }
    while (e > b) {
        size_t start = e - 1;  // back up to the start of the last character
        while (start > b && (uint8_t(s[start]) & 0xC0) == 0x80) start--;
        if (!is_py_space(code_point(s, start).first)) break;
        e = start;
    }
    return s.substr(b, e - b);
}

bool opens_with_system(const std::vector<Message>& m) { return !m.empty() && m[0].role == "system"; }

// ---- one family at a time ----

void turn(Parts& p, ChatFamily f, const std::string& role, const std::string& content) {
    if (f == ChatFamily::ChatML) add_text(p, "<|im_start|>" + role + "\n" + content + "<|im_end|>\n");
    else add_text(p, "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + py_strip(content) + "<|eot_id|>");
}

void generation_prompt(Parts& p, ChatFamily f) {
    if (f == ChatFamily::ChatML) add_text(p, "<|im_start|>assistant\n");
    else add_text(p, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// BOS as the template writes it: Llama 3 always; ChatML when the tokenizer has one (our own
// sentencepiece tokenizers; Qwen's has none).
void begin(Parts& p, const Tokenizer& tok) { add_id(p, tok.bos_id()); }

// Llama-2-chat, one Parts per turn: the system text (`scaffold` first, then the conversation's own
// system turn) opens the first user turn; turns must alternate user/assistant.
std::vector<Parts> llama2_turns(const Tokenizer& tok, const std::vector<Message>& messages, const std::string& scaffold) {
    const bool sys = opens_with_system(messages);
    std::string system_text = scaffold;
    if (sys) system_text += (scaffold.empty() ? "" : "\n\n") + messages[0].content;
    std::vector<Parts> turns;
    for (size_t i = sys ? 1 : 0, k = 0; i < messages.size(); i++, k++) {
        const Message& m = messages[i];
        check((m.role == "user") == (k % 2 == 0),
              "chat (Llama 2 template): conversation roles must alternate user/assistant/user/...");
        std::string content = m.content;
        if (k == 0 && (sys || !scaffold.empty())) content = "<<SYS>>\n" + system_text + "\n<</SYS>>\n\n" + content;
        Parts p;
        if (m.role == "user") {
            add_id(p, tok.bos_id());
            add_text(p, "[INST] " + py_strip(content) + " [/INST]");
        } else if (m.role == "assistant") {
            add_text(p, " " + py_strip(content) + " ");
            add_id(p, tok.eos_id());
        }
        turns.push_back(std::move(p));
    }
    return turns;
}

// Llama 2 has no system turn of its own: the first user turn (which holds the system text) is the
// prefix, and the prompt is every turn after it (often none: generation starts after [/INST]).
Parts llama2_prompt_parts(const Tokenizer& tok, const std::vector<Message>& messages) {
    Parts p;
    const std::vector<Parts> turns = llama2_turns(tok, messages, "");
    for (size_t t = 1; t < turns.size(); t++) p.insert(p.end(), turns[t].begin(), turns[t].end());
    return p;
}

Parts prompt_parts(const Tokenizer& tok, const ChatFormat& fmt, const std::vector<Message>& messages, bool add_generation) {
    if (fmt.family == ChatFamily::Llama2) return llama2_prompt_parts(tok, messages);
    Parts p;
    for (const Message& m : messages) turn(p, fmt.family, m.role, m.content);
    if (add_generation) generation_prompt(p, fmt.family);
    return p;
}

Parts prefix_parts(const Tokenizer& tok, const ChatFormat& fmt, const std::string& system_text,
                   const std::vector<Message>& prompt) {
    Parts p;
    if (fmt.family == ChatFamily::Llama2) {
        std::vector<Parts> turns = llama2_turns(tok, prompt, system_text);
        return turns.empty() ? p : turns[0];
    }
    begin(p, tok);
    if (!fmt.system_header.empty()) {  // Llama 3.1+: the dated system turn is always there
        add_text(p, "<|start_header_id|>system<|end_header_id|>\n\n" + fmt.system_header + py_strip(system_text) + "<|eot_id|>");
        return p;
    }
    if (!system_text.empty()) turn(p, fmt.family, "system", system_text);
    else if (!fmt.default_system.empty() && !opens_with_system(prompt)) turn(p, fmt.family, "system", fmt.default_system);
    return p;
}

std::vector<int> to_ids(const Tokenizer& tok, const Parts& parts) {
    std::vector<int> ids;
    for (const Part& p : parts) {
        if (p.id >= 0) {
            ids.push_back(p.id);
        } else {
            std::vector<int> t = tok.encode(p.text);
            ids.insert(ids.end(), t.begin(), t.end());
        }
    }
    return ids;
}

// Llama 3.1+'s system header: the template's date_string literal, or today's date when the
// template asks for strftime_now (transformers provides it, so that branch is the one taken).
std::string llama31_system_header(const std::string& tmpl, const std::string& where) {
    std::string date;
    if (tmpl.find("strftime_now") != std::string::npos) {
        char buf[32];
        const std::time_t now = std::time(nullptr);
        std::strftime(buf, sizeof buf, "%d %b %Y", std::localtime(&now));
        date = buf;
    } else {
        const std::string key = "set date_string = \"";
        const size_t at = tmpl.find(key);
        check(at != std::string::npos, where + ": a dated system header without a date_string");
        date = tmpl.substr(at + key.size(), tmpl.find('"', at + key.size()) - at - key.size());
    }
    return "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n";
}

// The default system text of a ChatML template: the literal in '<|im_start|>system\n...<|im_end|>'
// (Qwen2.5's "You are Qwen, created by Alibaba Cloud. ..."), "" when the template has none.
std::string chatml_default_system(const std::string& tmpl) {
    const std::string open = "<|im_start|>system\\n", close = "<|im_end|>";
    for (size_t at = tmpl.find(open); at != std::string::npos; at = tmpl.find(open, at + 1)) {
        const size_t b = at + open.size(), e = tmpl.find(close, b);
        if (e == std::string::npos) break;
        const std::string lit = tmpl.substr(b, e - b);
        if (lit.empty() || lit.find_first_of("'\"+{}\\") != std::string::npos) continue;  // an expression, not a literal
        return lit;
    }
    return "";
}

}  // namespace

ChatFormat chat_format(const Tokenizer& tok) {
    const std::string& t = tok.chat_template();
    const std::string where = "chat template of " + tok.path();
    auto has = [&](const char* s) { return t.find(s) != std::string::npos; };
    if (t.empty()) {  // no template: go by the markers the vocabulary holds
        if (!tok.is_single_token("<|im_start|>") && tok.is_single_token("<|start_header_id|>")) return {ChatFamily::Llama3, "", ""};
        return {ChatFamily::ChatML, "", ""};
    }
    if (has("<|im_start|>")) return {ChatFamily::ChatML, chatml_default_system(t), ""};
    if (has("<|start_header_id|>")) {
        if (!has("Cutting Knowledge Date")) return {ChatFamily::Llama3, "", ""};
        check(has("Cutting Knowledge Date: December 2023"), where + ": a Llama 3 dated header we do not know");
        return {ChatFamily::Llama3, "", llama31_system_header(t, where)};
    }
    if (has("[INST]")) return {ChatFamily::Llama2, "", ""};
    throw Error(where + ": not a ChatML, Llama 3 or Llama 2 [INST] template");
}

namespace {

// The whole conversation as the template renders it. Llama 3.1+ takes a leading system turn into
// its dated system turn; the other families render it as the first turn.
Parts conversation_parts(const Tokenizer& tok, const std::vector<Message>& messages, bool add_generation_prompt) {
    const ChatFormat fmt = chat_format(tok);
    const bool merge_system = !fmt.system_header.empty() && opens_with_system(messages);
    const std::vector<Message> rest(messages.begin() + (merge_system ? 1 : 0), messages.end());
    Parts all = prefix_parts(tok, fmt, merge_system ? messages[0].content : "", rest);
    for (Part& p : prompt_parts(tok, fmt, rest, add_generation_prompt)) all.push_back(std::move(p));
    return all;
}

}  // namespace

std::string render_chat(const Tokenizer& tok, const std::vector<Message>& messages, bool add_generation_prompt) {
    std::string text;
    for (const Part& p : conversation_parts(tok, messages, add_generation_prompt)) text += p.id >= 0 ? tok.decode({p.id}) : p.text;
    return text;
}

std::vector<int> chat_tokens(const Tokenizer& tok, const std::vector<Message>& messages, bool add_generation_prompt) {
    return to_ids(tok, conversation_parts(tok, messages, add_generation_prompt));
}

std::vector<int> chat_prompt_tokens(const Tokenizer& tok, const std::vector<Message>& messages) {
    return to_ids(tok, prompt_parts(tok, chat_format(tok), messages, true));
}

std::vector<int> chat_prefix_tokens(const Tokenizer& tok, const std::string& system_text, const std::vector<Message>& prompt) {
    return to_ids(tok, prefix_parts(tok, chat_format(tok), system_text, prompt));
}

std::vector<int> chat_stop_tokens(const Tokenizer& tok) {
    const ChatFormat fmt = chat_format(tok);
    std::vector<int> stop;
    auto add = [&](int id) {
        if (id >= 0 && std::find(stop.begin(), stop.end(), id) == stop.end()) stop.push_back(id);
    };
    const char* end_of_turn = fmt.family == ChatFamily::ChatML ? "<|im_end|>" : fmt.family == ChatFamily::Llama3 ? "<|eot_id|>" : "";
    if (*end_of_turn && tok.is_single_token(end_of_turn)) add(tok.encode(end_of_turn)[0]);
    add(tok.eos_id());
    for (int id : tok.generation_eos_ids()) add(id);
    return stop;
}

}  // namespace rusca
