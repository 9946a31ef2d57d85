// archlens-cli init-model: a randomly initialised Mamba in Hugging Face layout with a
// byte-level BPE tokenizer trained by our own trainer on a text corpus: an untrained starting
// point (for tests, fine-tuning experiments, and comparing with the trained bundled models).
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common.h"
#include "formats/atomic_file.h"
#include "models/mamba_init.h"
#include "tokenizer/bpe_trainer.h"

namespace archlens::cli {

void addInitModelCommand(CLI::App& app)
{
    auto* cmd = app.add_subcommand("init-model",
                                   "Write an untrained, randomly initialised Mamba (HF layout) with a BPE tokenizer "
                                   "trained on a corpus");
    struct Opts {
        std::string out, corpus, name = "mamba-demo";
        MambaInitOptions init;
        int64_t vocab = 1024;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--out", o->out, "Folder to write")->required();
    cmd->add_option("--corpus", o->corpus, "Text file the tokenizer is trained on")->required()->check(CLI::ExistingFile);
    cmd->add_option("--vocab-size", o->vocab, "Tokenizer vocabulary size (= embedding rows)")->capture_default_str();
    cmd->add_option("--d-model", o->init.dModel, "Model width")->capture_default_str();
    cmd->add_option("--layers", o->init.layers, "Number of Mamba layers")->capture_default_str();
    cmd->add_option("--d-state", o->init.dState, "SSM state size N")->capture_default_str();
    cmd->add_option("--expand", o->init.expand, "d_inner = expand × d_model")->capture_default_str();
    cmd->add_option("--seed", o->init.seed, "Random seed")->capture_default_str();
    cmd->add_option("--name", o->name, "Name shown in the app")->capture_default_str();
    cmd->callback([o] {
        const std::string corpus = readFileBytes(o->corpus);
        BpeTrainerOptions topts;
        topts.vocabSize = o->vocab;
        const std::string tokJson = trainByteLevelBpe({corpus}, topts);
        const Tokenizer tok = Tokenizer::fromJson(tokJson, "trained tokenizer");
        MambaInitOptions init = o->init;
        init.vocabSize = tok.vocabSize();
        const std::filesystem::path dir(o->out);
        writeRandomMamba(dir, init);
        writeFileAtomic(dir / "tokenizer.json", tokJson);
        nlohmann::ordered_json card = {
            {"name", o->name},
            {"trained", false},
            {"label", "untrained"},
            {"description", "Random weights (Mamba initialisation), not trained: its predictions are noise. "
                            "It exists so the app has a model to open before trained models are bundled."},
            {"seed", o->init.seed},
        };
        writeFileAtomic(dir / "archlens_card.json", card.dump(2) + "\n");
        fmt::print("wrote {}: d_model {}, {} layers, d_state {}, vocab {}\n", dir.string(), init.dModel, init.layers,
                   init.dState, init.vocabSize);
    });
}

} // namespace archlens::cli
