// error.h: the one exception type rusca throws for bad input or bad state.
// Every message names what was wrong (file, line, tensor, flag) so the user can fix it;
// main() prints it as "rusca: error: ..." and exits with status 1.
#pragma once
#include <stdexcept>
#include <string>

namespace rusca {

struct Error : std::runtime_error {
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// check(cond, msg): throw Error(msg) when cond is false. msg is built only on failure
// when passed as a lambda; a plain string is fine where the check is cold.
inline void check(bool cond, const std::string& msg) {
    if (!cond) throw Error(msg);
}

}  // namespace rusca
