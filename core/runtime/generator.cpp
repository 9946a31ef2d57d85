#include "runtime/generator.h"

namespace archlens {

GenerateResult generate(Model& model, ModelState& state, std::span<const int32_t> prompt, const GenerateOptions& opts)
{
    GenerateResult result;
    if (prompt.empty())
        throw Error(ErrorCode::InvalidArgument, "generation needs at least one prompt token");
    uint64_t rng = opts.seed;
    Tensor logits = model.forward(prompt, state, opts.sink, ForwardMode::Chunk, /*allLogits=*/false); // (1, V)
    for (int i = 0; i < opts.maxNewTokens; ++i) {
        if (opts.cancel && opts.cancel->load()) {
            result.cancelled = true;
            break;
        }
        const int32_t next = model.backend().sample(logits, opts.sampling, rng);
        result.tokens.push_back(next);
        const bool keepGoing = !opts.onToken || opts.onToken(next, logits);
        if (!keepGoing || next == opts.stopTokenId || i + 1 == opts.maxNewTokens)
            break;
        const int32_t ids[1] = {next};
        logits = model.forward(ids, state, opts.sink, ForwardMode::Recurrent, false);
    }
    return result;
}

} // namespace archlens
