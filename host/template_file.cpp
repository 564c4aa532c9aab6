// template_file.cpp: section parsing and placeholder substitution for the template files.
#include "template_file.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "error.h"

namespace rusca {

namespace {

std::string without_trailing_space(std::string s) {
    while (!s.empty() && std::isspace((unsigned char)s.back())) s.pop_back();
    return s;
}

// A section's lines joined by '\n', blank lines at either end dropped (they only space the file).
std::string join_section(const std::vector<std::string>& lines) {
    size_t a = 0, b = lines.size();
    while (a < b && without_trailing_space(lines[a]).empty()) a++;
    while (b > a && without_trailing_space(lines[b - 1]).empty()) b--;
    std::string out;
    for (size_t i = a; i < b; i++) out += (i > a ? "\n" : "") + lines[i];
    return out;
}

std::string list_names(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace

std::map<std::string, std::string> parse_sections(const std::string& text, const std::string& name,
                                                  const std::vector<std::string>& allowed,
                                                  const std::vector<std::string>& required) {
    std::map<std::string, std::vector<std::string>> lines;
    std::string current;  // "" until the first section marker: the documentation preamble
    std::istringstream in(text);
    std::string line;
    for (int lineno = 1; std::getline(in, line); lineno++) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const std::string t = without_trailing_space(line), where = name + ":" + std::to_string(lineno) + ": ";
        if (t.size() >= 2 && t.front() == '[' && t.back() == ']') {
            current = t.substr(1, t.size() - 2);
            check(std::find(allowed.begin(), allowed.end(), current) != allowed.end(),
                  where + "unknown section [" + current + "] (expected " + list_names(allowed) + ")");
            check(!lines.count(current), where + "section [" + current + "] appears twice");
            lines[current];
        } else if (current.empty()) {
            check(t.empty() || t[0] == '#', where + "text before the first section (comment lines start with '#')");
        } else {
            lines[current].push_back(line);
        }
    }
    for (const std::string& s : required) check(lines.count(s), name + ": template has no [" + s + "] section");
    std::map<std::string, std::string> out;
    for (const auto& kv : lines) out[kv.first] = join_section(kv.second);
    return out;
}

std::string substitute(const std::string& text, const std::vector<std::pair<std::string, std::string>>& values) {
    std::string out;
    for (size_t i = 0; i < text.size();) {
        bool replaced = false;
        for (const auto& kv : values)
            if (text.compare(i, kv.first.size(), kv.first) == 0) {
                out += kv.second, i += kv.first.size(), replaced = true;
                break;
            }
        if (!replaced) out += text[i++];
    }
    return out;
}

}  // namespace rusca
