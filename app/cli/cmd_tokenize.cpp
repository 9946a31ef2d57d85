// archlens-cli tokenize / detokenize: the tokenizers-library semantics of tokenizer.json.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common.h"

namespace archlens::cli {

void addTokenizeCommands(CLI::App& app)
{
    {
        auto* cmd = app.add_subcommand("tokenize", "Encode text to token ids (printed as a JSON array)");
        struct Opts {
            std::string tokenizer, text, textFile;
            bool special = false;
        };
        auto o = std::make_shared<Opts>();
        cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json, or a folder containing it")->required();
        auto* text = cmd->add_option("--text", o->text, "Text to encode");
        auto* file = cmd->add_option("--text-file", o->textFile, "File whose bytes are encoded unchanged");
        text->excludes(file);
        cmd->add_flag("--special", o->special, "add_special_tokens: apply the post-processor's template (e.g. BOS)");
        cmd->callback([o, text, file] {
            if (text->count() == 0 && file->count() == 0)
                throw Error(ErrorCode::InvalidArgument, "tokenize needs --text or --text-file");
            const Tokenizer tok = Tokenizer::fromFile(o->tokenizer);
            const std::string input = file->count() ? readFileBytes(o->textFile) : o->text;
            const auto ids = tok.encode(input, o->special);
            fmt::print("[{}]\n", fmt::join(ids, ","));
        });
    }
    {
        auto* cmd = app.add_subcommand("detokenize", "Decode token ids to text (special tokens kept, no clean-up)");
        auto tokenizer = std::make_shared<std::string>();
        auto ids = std::make_shared<std::string>();
        cmd->add_option("--tokenizer", *tokenizer, "tokenizer.json, or a folder containing it")->required();
        cmd->add_option("--ids", *ids, "Comma-separated ids, e.g. 1,2,3 ('' prints nothing)")->required();
        cmd->callback([tokenizer, ids] {
            const Tokenizer tok = Tokenizer::fromFile(*tokenizer);
            const auto list = parseIds(*ids, "--ids");
            for (int32_t id : list)
                if (id >= tok.vocabSize())
                    throw makeError(ErrorCode::InvalidArgument, "--ids: id {} is outside the vocabulary (0..{})", id,
                                    tok.vocabSize() - 1);
            const std::string text = tok.decode(list, /*skipSpecialTokens=*/false);
            // exactly the decoded bytes, no newline added, so output can be compared byte for byte
            std::fwrite(text.data(), 1, text.size(), stdout);
        });
    }
}

} // namespace archlens::cli
