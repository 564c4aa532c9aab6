// recipe.cpp: `key = value` lines of a recipe file (recipe.h).
#include "recipe.h"

#include <set>
#include <sstream>

#include "error.h"
#include "fileio.h"

namespace rusca {

namespace {

std::string trim(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// The value without a trailing comment; a quoted value keeps a '#' inside its quotes.
std::string value_of(const std::string& raw, const std::string& where) {
    std::string v = trim(raw);
    if (!v.empty() && v[0] == '"') {
        const size_t end = v.find('"', 1);
        check(end != std::string::npos, where + "unterminated quoted value");
        check(trim(v.substr(end + 1)).empty() || trim(v.substr(end + 1))[0] == '#', where + "text after the quoted value");
        return v.substr(1, end - 1);
    }
    return trim(v.substr(0, v.find('#')));
}

}  // namespace

std::vector<RecipeSetting> parse_recipe(const std::string& text, const std::string& name) {
    std::vector<RecipeSetting> out;
    std::set<std::string> seen;
    std::istringstream in(text);
    int lineno = 0;
    for (std::string line; std::getline(in, line);) {
        lineno++;
        const std::string t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        const std::string where = name + ":" + std::to_string(lineno) + ": ";
        const size_t eq = t.find('=');
        check(eq != std::string::npos, where + "expected `key = value`, got \"" + t + "\"");
        RecipeSetting s{trim(t.substr(0, eq)), value_of(t.substr(eq + 1), where), lineno};
        check(!s.key.empty() && s.key.find_first_of(" \t\"") == std::string::npos && s.key[0] != '-',
              where + "bad key \"" + s.key + "\" (a flag's name without the dashes, e.g. top-p)");
        check(!s.value.empty(), where + "\"" + s.key + "\" has no value");
        check(seen.insert(s.key).second, where + "\"" + s.key + "\" is set twice");
        out.push_back(s);
    }
    return out;
}

std::vector<RecipeSetting> read_recipe(const std::string& path) { return parse_recipe(read_file(path), path); }

}  // namespace rusca
