// chat.h: the chat template. We render ChatML (the Qwen family's format, and our tiny tokenizer's,
// whose <|im_start|> / <|im_end|> are single tokens):
//   <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n
// The scaffold of RuscaRL is a system turn in the same format placed BEFORE these tokens; the
// prompt itself is never re-templated, so the bare prompt tokens are the suffix of the scaffolded
// ones.
#pragma once
#include <string>
#include <vector>

#include "rubric.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

constexpr const char* kImStart = "<|im_start|>";
constexpr const char* kImEnd = "<|im_end|>";  // ends an assistant turn: the stop token

// The conversation, optionally followed by the opening of an assistant turn.
std::string render_chat(const std::vector<Message>& messages, bool add_generation_prompt);
// A system turn holding `text`, or "" when text is empty (no scaffold: the prompt is unchanged).
std::string render_system_turn(const std::string& text);

// Prompt tokens ready for generation (ends with the assistant turn's opening), without BOS.
std::vector<int> chat_prompt_tokens(const Tokenizer& tok, const std::vector<Message>& messages);
// What goes before the prompt tokens: BOS (if the tokenizer has one), then the system turn holding
// `system_text` (the scaffold), or nothing more when it is empty.
std::vector<int> chat_prefix_tokens(const Tokenizer& tok, const std::string& system_text);
// Tokens that end an assistant turn: <|im_end|> when the tokenizer has it as one piece, and EOS.
std::vector<int> chat_stop_tokens(const Tokenizer& tok);

}  // namespace rusca
