#include "run_options.h"

#include "base/log.h"
#include "formats/hf_cache.h"

namespace archlens::cli {

void RunOptions::add(CLI::App* cmd, const std::string& backendDefault)
{
    backend = backendDefault;
    cmd->add_option("--model", model, "Model folder, or org/name in the Hugging Face cache")->required();
    promptOpt = cmd->add_option("--prompt", prompt, "Prompt text (encoded with add_special_tokens on)");
    tokensOpt = cmd->add_option("--tokens", tokens, "Prompt as token ids, used as given, e.g. 1,2,3");
    promptOpt->excludes(tokensOpt);
    cmd->add_option("--backend", backend, "auto | cpu | cpu-reference | cuda")->capture_default_str();
    cmd->add_option("--threads", threads, "CPU threads (0: every CPU this process may use)")
        ->capture_default_str()
        ->check(CLI::Range(0, 4096));
}

PreparedRun prepareRun(const RunOptions& o)
{
    if (o.promptOpt->count() == 0 && o.tokensOpt->count() == 0)
        throw Error(ErrorCode::InvalidArgument, "give the prompt as --prompt TEXT or --tokens 1,2,3");
    PreparedRun r;
    r.modelDir = resolveModelPath(o.model);
    r.revision = cacheRevisionOf(r.modelDir);
    BackendOptions bo;
    bo.threads = o.threads;
    BackendChoice choice = createBackend(o.backend, bo);
    if (!choice.notice.empty())
        logInfo("{}", choice.notice);
    r.backendName = choice.backend->name();
    r.tokenizer = tokenizerForModel(r.modelDir);
    if (o.promptOpt->count()) {
        if (!r.tokenizer)
            throw Error(ErrorCode::InvalidArgument, "this model folder has no tokenizer.json, so --prompt cannot be encoded",
                        r.modelDir.string(), "give token ids with --tokens 1,2,3");
        r.prompt = o.prompt;
        r.ids = r.tokenizer->encode(o.prompt, /*addSpecialTokens=*/true);
        if (r.ids.empty())
            throw Error(ErrorCode::InvalidArgument, "the prompt encodes to no tokens");
    } else {
        r.ids = parseIds(o.tokens, "--tokens");
        if (r.ids.empty())
            throw Error(ErrorCode::InvalidArgument, "--tokens: give at least one token id");
    }
    r.model = loadModel(r.modelDir, choice.backend);
    if (const std::string label = modelCardLabel(r.modelDir); !label.empty())
        logInfo("this model is {}: random weights, so its output is noise", label);
    for (int32_t id : r.ids)
        if (id >= r.model->info().vocabRows)
            throw makeError(ErrorCode::InvalidArgument, "token id {} is outside the model's vocabulary (0..{})", id,
                            r.model->info().vocabRows - 1);
    return r;
}

} // namespace archlens::cli
