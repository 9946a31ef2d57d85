// Helpers shared by the UI tests: the bundled demo model, a TraceModel filled by running it
// through a RunSession directly (no window), a temporary folder, and running archlens-cli.
#pragma once

#include <QProcess>
#include <QSignalSpy>
#include <QStringList>
#include <QTemporaryDir>

#include "backends/backend.h"
#include "models/model.h"
#include "runtime/run_session.h"
#include "session/session_source.h"
#include "tokenizer/tokenizer.h"

namespace archlens::uitest {

inline QString demoModel() { return QStringLiteral(ARCHLENS_SOURCE_DIR "/resources/models/mamba-text"); }
inline const char* kPrompt = "The selective scan decides what to keep and what to forget.";

// Runs the demo model over the prompt through the chunk path (one call, as the CLI does) into
// a RunSession whose store `model` reads.
inline void fillFromDemo(ui::TraceModel& model, const std::string& prompt = kPrompt)
{
    auto m = loadModel(demoModel().toStdString(), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
    const Tokenizer tok = Tokenizer::fromFile(demoModel().toStdString());
    const auto ids = tok.encode(prompt, true);
    ui::RunMeta meta;
    meta.modelName = "mamba-demo";
    meta.modelPath = demoModel();
    meta.architecture = QString::fromStdString(m->info().architecture);
    meta.prompt = QString::fromStdString(prompt);
    meta.dInner = m->info().dInner;
    meta.dState = m->info().dState;
    meta.layers = m->info().layers;
    for (const auto& x : m->info().layerMixer)
        meta.layerMixer << QString::fromStdString(x);
    meta.source = "live";
    SessionOptions o;
    o.prefillChunk = int64_t(ids.size());
    o.frames.probes.probes.insert(Probe::SsmState);
    RunSession session(*m, o);
    session.setPrompt(ids);
    session.prefill();
    ui::fillFromSession(model, session, meta, ui::vocabTexts(&tok, m->info().vocabRows));
}

struct CliResult {
    int code = -1;
    QString out, err;
};
inline CliResult runCli(const QStringList& args, int timeoutMs = 60000)
{
    QProcess p;
    p.start(QStringLiteral(ARCHLENS_CLI), args);
    p.waitForFinished(timeoutMs);
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAllStandardOutput()),
            QString::fromUtf8(p.readAllStandardError())};
}

} // namespace archlens::uitest
