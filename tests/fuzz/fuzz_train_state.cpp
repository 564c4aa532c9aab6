// fuzz_train_state.cpp: a checkpoint's train_state.safetensors (AdamW moments + metadata) through
// load_train_state and restore_training, beside a valid model of a tiny config.
#include <vector>

#include "host/checkpoint.h"
#include "host/config.h"
#include "host/optimizer.h"
#include "host/params.h"
#include "host/run_log.h"
#include "host/sft_data.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

struct TinyCheckpoint {
    rusca::ModelConfig config;
    rusca::ParamLayout layout;
    std::string dir;
    std::vector<float> params;
    TinyCheckpoint()
        : config(rusca::parse_config(R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 4,
              "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2})",
                                     "tiny")),
          layout(config),
          dir(rusca::fuzz::scratch_dir() + "/ckpt"),
          params(layout.total, 0.5f) {
        rusca::save_model(dir, config, layout, params.data());
    }
};

}  // namespace

RUSCA_FUZZ_TARGET(train_state) {
    static TinyCheckpoint ck;
    rusca::fuzz::scratch_file("ckpt/train_state.safetensors", data, size);
    rusca::fuzz::expect_clean(ck.dir, [&] {
        const rusca::TrainState st = rusca::load_train_state(ck.dir, ck.layout);
        rusca::AdamW adam(ck.layout, rusca::AdamWConfig{});
        rusca::EpochSampler sampler(8, 1);
        rusca::restore_training(ck.dir, st, ck.layout, ck.params.data(), adam, sampler, ck.dir + "/no_metrics.jsonl");
        sampler.next();
    });
}
