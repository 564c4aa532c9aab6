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

}  // namespace rusca
