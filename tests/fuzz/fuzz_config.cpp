// fuzz_config.cpp: config.json text through parse_config; an accepted config must give a parameter
// layout and survive the round trip through config_to_json unchanged.
#include "host/config.h"
#include "host/params.h"
#include "tests/fuzz/fuzz_target.h"

RUSCA_FUZZ_TARGET(config) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    rusca::fuzz::expect_clean("fuzz/config.json", [&] {
        const rusca::ModelConfig c = rusca::parse_config(text, "fuzz/config.json");
        const rusca::ParamLayout layout(c);
        const rusca::ModelConfig back = rusca::parse_config(rusca::config_to_json(c), "fuzz/config.json (written)");
        if (back.family != c.family || back.num_layers != c.num_layers || back.head_dim != c.head_dim ||
            back.num_kv_heads != c.num_kv_heads || rusca::ParamLayout(back).total != layout.total)
            throw rusca::fuzz::FuzzFinding("config_to_json does not round-trip: " + text.substr(0, 200));
    });
}
