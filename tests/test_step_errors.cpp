// test_step_errors.cpp: errors are not skipped steps. In `rusca sft` and `rusca rl`, only a non-finite
// loss or gradient norm skips an update; a CUDA fault (CudaError) or any other rusca::Error during a
// step stops the run with its message, and what was saved before it stays whole: the last good
// checkpoint resumes to the same weights as a run that never failed. The failures are injected
// through make_model's test hook (set_model_wrapper) into a model that forwards to the real CPU one.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host/fileio.h"
#include "host/model.h"
#include "host/model_hook.h"
#include "host/rl.h"
#include "host/sft.h"
#include "rl_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {

// What FaultyModel does on the chosen call of its chosen method.
enum class Fault { kCudaError, kError, kNaN };

// The real model, except that call number `at` (1-based) of `method` throws or returns NaN.
class FaultyModel final : public Model {
public:
    FaultyModel(std::unique_ptr<Model> inner, std::string method, int at, Fault fault)
        : Model(inner->config), m_(std::move(inner)), method_(std::move(method)), at_(at), fault_(fault) {}

    float forward(const int* t, const int* y, int B, int T) override {
        const float loss = m_->forward(t, y, B, T);
        return hit("forward") ? nan_or_throw() : loss;
    }
    void backward() override { m_->backward(); }
    float forward_backward(const int* t, const int* y, int B, int T) override {
        if (hit("forward_backward")) return nan_or_throw();
        return m_->forward_backward(t, y, B, T);
    }
    void zero_grad() override { m_->zero_grad(); }
    const float* forward_hidden(const int* t, int B, int T) override { return m_->forward_hidden(t, B, T); }
    void backward_hidden(const float* d) override { m_->backward_hidden(d); }
    std::vector<float> token_logprobs(const GrpoBatch& b, double temperature) override {
        if (hit("token_logprobs")) nan_or_throw();
        return m_->token_logprobs(b, temperature);
    }
    cpu::GrpoLossStats grpo_loss_backward(const GrpoBatch& b, const cpu::GrpoLossConfig& cfg) override {
        if (hit("grpo_loss_backward")) {
            cpu::GrpoLossStats st;
            st.loss = nan_or_throw();
            return st;
        }
        return m_->grpo_loss_backward(b, cfg);
    }
    std::vector<float> logits() const override { return m_->logits(); }
    long counted_tokens() const override { return m_->counted_tokens(); }
    float* params() override { return m_->params(); }
    float* grads() override { return m_->grads(); }
    void upload_params() override { m_->upload_params(); }
    void download_params() override { m_->download_params(); }
    void upload_optimizer(const AdamW& a) override { m_->upload_optimizer(a); }
    void download_optimizer(AdamW& a) override { m_->download_optimizer(a); }
    float optimizer_step(AdamW& adam, float lr) override {
        if (hit("optimizer_step")) return nan_or_throw();
        return m_->optimizer_step(adam, lr);
    }
    const char* device() const override { return m_->device(); }
    const void* device_weights() const override { return m_->device_weights(); }
    void synchronize() override { m_->synchronize(); }

private:
    bool hit(const char* method) { return method_ == method && ++calls_ == at_; }
    float nan_or_throw() const {
        if (fault_ == Fault::kCudaError)
            throw CudaError("host/cuda/cuda_model.cpp:321: CUDA error cudaErrorIllegalAddress: an illegal memory "
                            "access was encountered");
        if (fault_ == Fault::kError) throw Error("the injected failure");
        return std::numeric_limits<float>::quiet_NaN();
    }
    std::unique_ptr<Model> m_;
    const std::string method_;
    const int at_;
    const Fault fault_;
    int calls_ = 0;
};

// Installs the failure for the models built in this scope (trainable ones only: the RL reference
// and judge are frozen and pass through untouched).
struct InjectFault {
    InjectFault(const std::string& method, int at, Fault fault) {
        set_model_wrapper([=](std::unique_ptr<Model> m) -> std::unique_ptr<Model> {
            if (frozen(*m)) return m;
            return std::make_unique<FaultyModel>(std::move(m), method, at, fault);
        });
    }
    ~InjectFault() { set_model_wrapper(nullptr); }
    static bool frozen(Model& m) {
        try {
            return m.grads() == nullptr;
        } catch (const Error&) {  // a frozen model refuses to hand out gradients
            return true;
        }
    }
};

const char* kTinyConfig = R"({"model_type": "qwen2", "vocab_size": 512, "hidden_size": 16,
  "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
  "max_position_embeddings": 64, "tie_word_embeddings": true})";

SftOptions sft_options(const TempDir& dir, const std::string& out) {
    write_file_atomic(dir.path + "/config.json", kTinyConfig);
    SftOptions o;
    o.init_config = dir.path + "/config.json";
    o.data = "data/tiny_sft.jsonl";
    o.tokenizer = "data/tokenizer.model";
    o.out = dir.path + "/" + out;
    o.batch = 2, o.seq = 16, o.steps = 5, o.warmup = 2, o.lr = 3e-3f, o.save_every = 1, o.device = "cpu";
    o.quiet = true;
    return o;
}

bool any_skipped(const std::vector<json>& rows) {
    for (const json& r : rows)
        if (r.contains("skipped") || r.value("updates_skipped", 0) > 0) return true;
    return false;
}

// A fault at step 3 (in the forward + backward, or in the optimizer step): the run stops with the
// fault's message, logs steps 1-2 only, none skipped, and the step-2 checkpoint it left resumes to
// the uninterrupted run's weights.
void expect_sft_stops(const std::string& method, Fault fault, const std::string& message) {
    TempDir dir;
    SftOptions full = sft_options(dir, "full");
    run_sft(full);

    SftOptions o = sft_options(dir, "faulty");
    {
        InjectFault inject(method, 3, fault);
        expect_error([&] { run_sft(o); }, {message});
    }
    const std::vector<json> rows = read_metrics(o.out + "/metrics.jsonl");
    ASSERT_EQ(rows.size(), 2u) << "the failed step must not be logged";
    EXPECT_FALSE(any_skipped(rows));
    EXPECT_EQ(latest_checkpoint(o.out), o.out + "/checkpoint-000002");
    EXPECT_FALSE(file_exists(o.out + "/checkpoint-000003/model.safetensors"));

    o.resume = true;
    SftResult rest = run_sft(o);
    EXPECT_EQ(rest.losses.size(), 3u);
    EXPECT_EQ(read_file(o.out + "/checkpoint-000005/model.safetensors"),
              read_file(full.out + "/checkpoint-000005/model.safetensors"));
}

TEST(StepErrors, SftStopsOnACudaFaultInTheStep) {
    expect_sft_stops("forward_backward", Fault::kCudaError, "an illegal memory access was encountered");
}

TEST(StepErrors, SftStopsOnAnErrorInTheOptimizerStep) {
    expect_sft_stops("optimizer_step", Fault::kError, "the injected failure");
}

// The one thing that does skip: a non-finite loss (or norm) is logged as a skipped step and the run
// goes on to the end.
TEST(StepErrors, SftSkipsOnlyNonFiniteSteps) {
    TempDir dir;
    for (const char* method : {"forward_backward", "optimizer_step"}) {
        SftOptions o = sft_options(dir, method);
        InjectFault inject(method, 3, Fault::kNaN);
        SftResult r = run_sft(o);
        EXPECT_EQ(r.losses.size(), 5u) << method;
        const std::vector<json> rows = read_metrics(o.out + "/metrics.jsonl");
        ASSERT_EQ(rows.size(), 5u) << method;
        for (int i = 0; i < 5; i++) EXPECT_EQ(rows[i].contains("skipped"), i == 2) << method << " step " << i + 1;
    }
}

std::string write_model(const std::string& dir, uint64_t seed, float std) {
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    return write_random_model(dir, c, seed, std);
}

RlOptions rl_options(const TempDir& d, const std::string& out) {
    RlOptions o;
    o.policy = d.path + "/policy", o.judge = d.path + "/judge", o.tokenizer = "data/tokenizer.model";
    o.data = d.path + "/rubrics.jsonl";
    o.out = d.path + "/" + out;
    o.steps = 3, o.prompts_per_step = 2, o.group = 4, o.updates_per_step = 2, o.max_new_tokens = 6;
    o.save_every = 1, o.lr = 1e-3f, o.loss.beta = 0.01, o.device = "cpu", o.quiet = true;
    o.judge_template = "tests/judge_template_short.txt";  // verdicts of this random judge vary with the reply
    return o;
}

// `rusca rl`: a fault in step 2's first update (its GRPO loss and backward) or in its first old
// log-probs (2 minibatches a step: call 3 of either) stops the run with the message; step 1 is
// logged and saved, step 2 neither, and nothing is counted as a skipped update.
TEST(StepErrors, RlStopsOnAFaultInAStep) {
    TempDir d;
    write_model(d.path + "/policy", 1, 0.3f);
    write_model(d.path + "/judge", 2, 0.2f);
    write_rubrics(d.path + "/rubrics.jsonl", 5, 4);
    struct Case {
        const char* method;
        int at;
        Fault fault;
        const char* message;
    };
    for (const Case& c : {Case{"grpo_loss_backward", 3, Fault::kCudaError, "cudaErrorIllegalAddress"},
                          Case{"token_logprobs", 3, Fault::kError, "the injected failure"}}) {
        RlOptions o = rl_options(d, c.method);
        {
            InjectFault inject(c.method, c.at, c.fault);
            expect_error([&] { run_rl(o); }, {c.message});
        }
        const std::vector<json> rows = read_metrics(o.out + "/metrics.jsonl");
        ASSERT_EQ(rows.size(), 1u) << c.method;
        EXPECT_EQ(rows[0]["step"], 1) << c.method;
        EXPECT_FALSE(any_skipped(rows)) << c.method;
        EXPECT_EQ(latest_checkpoint(o.out), o.out + "/checkpoint-000001") << c.method;
        EXPECT_FALSE(file_exists(o.out + "/checkpoint-000002/model.safetensors")) << c.method;
    }
}

// A non-finite GRPO loss skips that update only, and says so.
TEST(StepErrors, RlSkipsANonFiniteUpdate) {
    TempDir d;
    write_model(d.path + "/policy", 1, 0.3f);
    write_model(d.path + "/judge", 2, 0.2f);
    write_rubrics(d.path + "/rubrics.jsonl", 5, 4);
    RlOptions o = rl_options(d, "nan");
    InjectFault inject("grpo_loss_backward", 3, Fault::kNaN);
    RlResult r = run_rl(o);
    EXPECT_EQ(r.last_step, 3);
    const std::vector<json> rows = read_metrics(o.out + "/metrics.jsonl");
    ASSERT_EQ(rows.size(), 3u);
    for (int i = 0; i < 3; i++) EXPECT_EQ(rows[i].value("updates_skipped", -1), i == 1 ? 1 : 0) << "step " << i + 1;
}

}  // namespace
