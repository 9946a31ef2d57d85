#include "models/mamba_init.h"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "formats/atomic_file.h"
#include "formats/safetensors.h"
#include "ops/math.h"

namespace archlens {

namespace fs = std::filesystem;

RandomCheckpoint makeRandomMamba(const MambaInitOptions& o)
{
    if (o.dModel <= 0 || o.layers <= 0 || o.dState <= 0 || o.expand <= 0 || o.dConv <= 0 || o.vocabSize <= 0)
        throw Error(ErrorCode::InvalidArgument, "every model dimension must be positive");
    const int64_t D = o.dModel, E = o.expand * D, N = o.dState, K = o.dConv, V = o.vocabSize;
    const int64_t R = (D + 15) / 16;
    uint64_t rng = o.seed;
    auto uniform = [&](int64_t fanIn, const Shape& shape) {
        const float bound = 1.0f / std::sqrt(float(fanIn));
        Tensor t = Tensor::empty(shape);
        for (float& v : t.span())
            v = float((uniform01(rng) * 2 - 1) * bound);
        return t;
    };
    auto normal = [&](float std, const Shape& shape) {
        Tensor t = Tensor::empty(shape);
        for (float& v : t.span()) {
            const double u1 = std::max(uniform01(rng), 1e-300), u2 = uniform01(rng);
            v = float(std * std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2));
        }
        return t;
    };
    auto ones = [](const Shape& shape) {
        Tensor t = Tensor::empty(shape);
        t.fill(1.f);
        return t;
    };

    RandomCheckpoint out;
    auto& tensors = out.tensors;
    // std 0.02 as transformers initialises embeddings; larger values make the tied head
    // predict "repeat the current token" with certainty, which misleads more than noise.
    tensors.emplace_back("backbone.embeddings.weight", normal(0.02f, {V, D}));
    for (int64_t i = 0; i < o.layers; ++i) {
        const std::string p = "backbone.layers." + std::to_string(i) + ".";
        tensors.emplace_back(p + "norm.weight", ones({D}));
        tensors.emplace_back(p + "mixer.in_proj.weight", uniform(D, {2 * E, D}));
        tensors.emplace_back(p + "mixer.conv1d.weight", uniform(K, {E, 1, K}));
        tensors.emplace_back(p + "mixer.conv1d.bias", uniform(K, {E}));
        tensors.emplace_back(p + "mixer.x_proj.weight", uniform(E, {R + 2 * N, E}));
        tensors.emplace_back(p + "mixer.dt_proj.weight", uniform(R, {E, R}));
        Tensor dtBias = Tensor::empty({E});
        for (float& v : dtBias.span()) {
            const double dt = std::exp(std::log(o.dtMin) + uniform01(rng) * (std::log(o.dtMax) - std::log(o.dtMin)));
            v = float(dt + std::log(-std::expm1(-dt))); // softplus⁻¹(dt)
        }
        tensors.emplace_back(p + "mixer.dt_proj.bias", dtBias);
        Tensor aLog = Tensor::empty({E, N});
        for (int64_t c = 0; c < E; ++c)
            for (int64_t n = 0; n < N; ++n)
                aLog.f32()[c * N + n] = std::log(float(n + 1));
        tensors.emplace_back(p + "mixer.A_log", aLog);
        tensors.emplace_back(p + "mixer.D", ones({E}));
        tensors.emplace_back(p + "mixer.out_proj.weight", uniform(E, {D, E}));
    }
    tensors.emplace_back("backbone.norm_f.weight", ones({D}));

    out.config = {
        {"architectures", {"MambaForCausalLM"}},
        {"model_type", "mamba"},
        {"hidden_size", D},
        {"num_hidden_layers", o.layers},
        {"state_size", N},
        {"expand", o.expand},
        {"intermediate_size", E},
        {"conv_kernel", K},
        {"time_step_rank", R},
        {"use_bias", false},
        {"use_conv_bias", true},
        {"hidden_act", "silu"},
        {"layer_norm_epsilon", 1e-5},
        {"residual_in_fp32", true},
        {"vocab_size", V},
        {"bos_token_id", 0},
        {"eos_token_id", 0},
        {"pad_token_id", 0},
        {"time_step_min", o.dtMin},
        {"time_step_max", o.dtMax},
        {"time_step_init_scheme", "random"},
        {"torch_dtype", "float32"},
    };
    return out;
}

void writeRandomMamba(const fs::path& dir, const MambaInitOptions& o)
{
    const RandomCheckpoint ckpt = makeRandomMamba(o);
    std::error_code ec;
    fs::create_directories(dir, ec);
    writeFileAtomic(dir / "config.json", ckpt.config.dump(2) + "\n");
    writeSafetensors(dir / "model.safetensors", ckpt.tensors);
}

} // namespace archlens
