// chat.cpp: ChatML rendering.
#include "chat.h"

namespace rusca {

std::string render_chat(const std::vector<Message>& messages, bool add_generation_prompt) {
    std::string out;
    for (const Message& m : messages) out += std::string(kImStart) + m.role + "\n" + m.content + kImEnd + "\n";
    if (add_generation_prompt) out += std::string(kImStart) + "assistant\n";
    return out;
}

std::string render_system_turn(const std::string& text) {
    return text.empty() ? "" : render_chat({{"system", text}}, false);
}

std::vector<int> chat_prompt_tokens(const Tokenizer& tok, const std::vector<Message>& messages) {
    return tok.encode(render_chat(messages, true));
}

std::vector<int> chat_prefix_tokens(const Tokenizer& tok, const std::string& system_text) {
    std::vector<int> ids;
    if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
    std::vector<int> turn = tok.encode(render_system_turn(system_text));
    ids.insert(ids.end(), turn.begin(), turn.end());
    return ids;
}

std::vector<int> chat_stop_tokens(const Tokenizer& tok) {
    std::vector<int> stop;
    std::vector<int> im_end = tok.encode(kImEnd);
    if (im_end.size() == 1) stop.push_back(im_end[0]);
    if (tok.eos_id() >= 0) stop.push_back(tok.eos_id());
    return stop;
}

}  // namespace rusca
