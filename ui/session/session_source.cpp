#include "session/session_source.h"

#include <QFileInfo>

#include <algorithm>
#include <filesystem>
#include <map>

#if ARCHLENS_HAVE_HDF5
#include "runtime/session_trace.h"
#endif

namespace archlens::ui {

VocabTexts vocabTexts(const Tokenizer* tokenizer, int64_t vocabRows)
{
    auto vocab = std::make_shared<std::vector<QString>>();
    vocab->reserve(size_t(std::max<int64_t>(vocabRows, 0)));
    for (int64_t id = 0; id < vocabRows; ++id)
        vocab->push_back(tokenizer && id < tokenizer->vocabSize()
                             ? QString::fromStdString(tokenizer->tokenText(int32_t(id)))
                             : QStringLiteral("#%1").arg(id));
    return vocab;
}

QString tokenTextOf(const VocabTexts& vocab, int32_t id)
{
    return vocab && id >= 0 && size_t(id) < vocab->size() ? (*vocab)[size_t(id)] : QStringLiteral("#%1").arg(id);
}

void fillFromSession(TraceModel& model, RunSession& session, const RunMeta& meta, const VocabTexts& vocab)
{
    model.reset(meta, session.sharedStore(), vocab);
    const int64_t T = session.computedEnd();
    std::vector<int32_t> ids(session.tokens().begin(), session.tokens().begin() + T);
    QStringList texts;
    for (int32_t id : ids)
        texts << tokenTextOf(vocab, id);
    model.addTokens(0, ids, texts);
    model.setSegments(session.segments());
    model.sync();
}

#if ARCHLENS_HAVE_HDF5
RunMeta traceRunMeta(const TraceSession& trace, const QString& path)
{
    const TraceMeta& tm = trace.meta();
    const TraceReader& r = trace.reader();
    RunMeta meta;
    meta.modelPath = QString::fromStdString(tm.modelPath);
    meta.modelName = QString::fromStdString(std::filesystem::path(tm.modelPath).filename().string());
    if (meta.modelName.isEmpty())
        meta.modelName = QFileInfo(path).fileName();
    meta.architecture = QString::fromStdString(tm.architecture);
    meta.revision = QString::fromStdString(tm.revision);
    meta.backend = QString::fromStdString(tm.backend);
    meta.prompt = QString::fromStdString(tm.prompt);
    meta.seed = tm.seed;
    meta.source = path;
    meta.layers = trace.layerCount();
    for (const std::string& m : r.attributeStrings("layer_mixer"))
        meta.layerMixer << QString::fromStdString(m);
    for (int l : r.layers()) {
        const std::string base = "/layers/" + std::to_string(l) + "/ssm/";
        if (r.has(base + "delta"))
            meta.dInner = r.shape(base + "delta")[1];
        if (r.has(base + "B"))
            meta.dState = r.shape(base + "B")[1];
    }
    return meta;
}

VocabTexts traceVocab(const TraceSession& trace)
{
    const TraceReader& r = trace.reader();
    std::optional<Tokenizer> tok;
    try {
        const std::filesystem::path file = std::filesystem::path(trace.meta().modelPath) / "tokenizer.json";
        if (!trace.meta().modelPath.empty() && std::filesystem::exists(file))
            tok = Tokenizer::fromFile(file);
    } catch (const std::exception&) {
        tok.reset();
    }
    const auto& ids = trace.tokens();
    int64_t V = r.has("/logits") ? r.shape("/logits")[1] : 0;
    for (int32_t id : ids)
        V = std::max<int64_t>(V, int64_t(id) + 1);
    if (tok)
        return vocabTexts(&*tok, V);
    std::map<int32_t, QString> seen;
    for (size_t t = 0; t < ids.size(); ++t)
        seen.emplace(ids[t], QString::fromStdString(trace.tokenText()[t]));
    auto vocab = std::make_shared<std::vector<QString>>();
    vocab->reserve(size_t(V));
    for (int32_t id = 0; id < int32_t(V); ++id) {
        auto it = seen.find(id);
        vocab->push_back(it != seen.end() ? it->second : QStringLiteral("#%1").arg(id));
    }
    return vocab;
}

QStringList traceTokenTexts(const TraceSession& trace)
{
    QStringList texts;
    for (const std::string& s : trace.tokenText())
        texts << QString::fromStdString(s);
    return texts;
}

void startFromTrace(TraceModel& model, TraceSession& trace, const QString& path)
{
    model.reset(traceRunMeta(trace, path), trace.sharedStore(), traceVocab(trace));
    model.addTokens(0, trace.tokens(), traceTokenTexts(trace));
    model.setSegments(trace.segments());
}
#endif

} // namespace archlens::ui
