// template_file.h: the small text-template format shared by data/scaffold_template.txt and
// data/judge_template.txt, so users edit wording without touching code.
//   - '#' lines before the first section are comments;
//   - a line "[name]" starts a section; its text is every line up to the next marker, joined by
//     '\n', blank lines at either end dropped;
//   - placeholders like {criterion} are replaced in one pass (substituted text is not rescanned).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rusca {

// Sections by name. Unknown or repeated sections, text before the first section, and missing
// required sections are Errors naming `name` (the file) and the line.
std::map<std::string, std::string> parse_sections(const std::string& text, const std::string& name,
                                                  const std::vector<std::string>& allowed,
                                                  const std::vector<std::string>& required);

// Replaces each key of `values` (e.g. "{criterion}") in one left-to-right pass.
std::string substitute(const std::string& text, const std::vector<std::pair<std::string, std::string>>& values);

}  // namespace rusca
