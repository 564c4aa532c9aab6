// recipe.h: recipe files, a run's settings in a file (recipes/*.toml: one per model of the paper),
// loaded by `rusca rl --recipe FILE`; a flag given on the command line wins over the recipe.
// Format (a TOML subset): `key = value` per line, key = a flag's long name without the dashes
// (`top-p = 0.8`), value a number, a word or a "quoted string"; `#` starts a comment; blank lines
// are skipped.
#pragma once
#include <string>
#include <vector>

namespace rusca {

struct RecipeSetting {
    std::string key, value;
    int line = 0;
};

// The settings of `path` in file order; a malformed line or a key given twice is an Error naming
// "path:line".
std::vector<RecipeSetting> read_recipe(const std::string& path);
std::vector<RecipeSetting> parse_recipe(const std::string& text, const std::string& name);

}  // namespace rusca
