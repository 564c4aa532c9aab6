// fuzz_grader.cpp: an external judge's HTTP reply body (host/judge_http.cpp reads it this way): the
// chat-completions JSON, then the "criteria_met" verdict in its content. Neither may throw: a
// reply without a verdict is a nullopt (retried, then masked), never an escaping exception. The
// raw bytes are also read as message content, which is where the fallbacks (fences, {...} blocks,
// <think>) do their work.
#include "host/grader.h"
#include "tests/fuzz/fuzz_target.h"

RUSCA_FUZZ_TARGET(grader) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    rusca::fuzz::expect_clean("fuzz/reply", [&] {
        std::string why;
        if (const std::optional<std::string> content = rusca::chat_completion_content(text, why))
            (void)rusca::parse_criteria_met(*content);
        else if (why.empty())
            throw rusca::fuzz::FuzzFinding("no content and no reason given");
        (void)rusca::parse_criteria_met(text);
    });
}
