// grader.cpp: the grader prompt and the fallbacks that find "criteria_met" in a reply.
#include "grader.h"

#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>

#include "error.h"
#include "fileio.h"
#include "template_file.h"

namespace rusca {

namespace {

using json = nlohmann::json;

std::string trim(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace((unsigned char)s[a])) a++;
    while (b > a && std::isspace((unsigned char)s[b - 1])) b--;
    return s.substr(a, b - a);
}

std::optional<bool> verdict_of(const std::string& text) {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("criteria_met") && j["criteria_met"].is_boolean()) return j["criteria_met"].get<bool>();
    return std::nullopt;
}

// The reply without ```json / ``` fences at its ends.
std::string without_fences(std::string s) {
    s = trim(s);
    for (const char* open : {"```json", "```JSON", "```"})
        if (s.rfind(open, 0) == 0) {
            s = s.substr(std::string(open).size());
            break;
        }
    if (s.size() >= 3 && s.compare(s.size() - 3, 3, "```") == 0) s.resize(s.size() - 3);
    return trim(s);
}

// Every top-level balanced {...} block, in order; braces inside JSON strings do not count.
std::vector<std::string> brace_blocks(const std::string& s) {
    std::vector<std::string> out;
    int depth = 0;
    bool in_string = false, escaped = false;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); i++) {
        const char c = s[i];
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"' && depth > 0) {
            in_string = true;
        } else if (c == '{') {
            if (depth++ == 0) start = i;
        } else if (c == '}' && depth > 0) {
            if (--depth == 0) out.push_back(s.substr(start, i - start + 1));
        }
    }
    return out;
}

// The reply after its reasoning; "" when the reasoning never ended (a reply cut off by max_tokens).
std::string without_think(const std::string& reply) {
    const size_t end = reply.find("</think>");
    if (end != std::string::npos) return reply.substr(end + 8);
    return reply.find("<think>") == std::string::npos ? reply : "";
}

}  // namespace

GraderTemplate GraderTemplate::load(const std::string& path) {
    std::map<std::string, std::string> sec = parse_sections(read_file(path), path, {"prompt"}, {"prompt"});
    GraderTemplate t{sec["prompt"]};
    check(t.prompt.find("{response}") != std::string::npos, path + ": [prompt] must contain {response}");
    check(t.prompt.find("{criterion}") != std::string::npos || t.prompt.find("{rubric_item}") != std::string::npos,
          path + ": [prompt] must contain {criterion} or {rubric_item}");
    return t;
}

std::string GraderTemplate::render(const JudgeItem& item, const Criterion& c) const {
    return fill_judge_placeholders(prompt, item, &c);
}

std::optional<bool> parse_criteria_met(const std::string& reply) {
    const std::string text = trim(without_think(reply));
    if (auto v = verdict_of(without_fences(text))) return v;
    for (const std::string& block : brace_blocks(text))
        if (auto v = verdict_of(block)) return v;
    static const std::regex field("\"criteria_met\"\\s*:\\s*(true|false)\\b");
    std::smatch m;
    if (std::regex_search(text, m, field)) return m[1] == "true";
    std::string bare;
    for (char c : text)
        if (std::isalpha((unsigned char)c)) bare += char(std::tolower((unsigned char)c));
        else if (!std::isspace((unsigned char)c) && !std::strchr("`'\".!", c)) return std::nullopt;
    if (bare == "true" || bare == "false") return bare == "true";
    return std::nullopt;
}

std::optional<std::string> chat_completion_content(const std::string& body, std::string& why) {
    using json = nlohmann::json;
    const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
        !j["choices"][0].is_object() || !j["choices"][0].contains("message") || !j["choices"][0]["message"].is_object()) {
        why = "not a chat completion";
        return std::nullopt;
    }
    const json& message = j["choices"][0]["message"];
    if (!message.contains("content") || !message["content"].is_string()) {
        why = "the reply has no message content";
        return std::nullopt;
    }
    return message["content"].get<std::string>();
}

}  // namespace rusca
