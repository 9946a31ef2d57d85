#include "session/model_worker.h"

#include <QElapsedTimer>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>

#include <algorithm>
#include <numeric>

#include "backends/backend_factory.h"
#include "base/error.h"
#include "formats/hf_cache.h"
#include "formats/safetensors.h"
#include "ops/math.h"
#include "session/trace_io.h"

namespace archlens::ui {

ModelWorker::ModelWorker(std::shared_ptr<LiveSink> sink)
    : m_sink(std::move(sink))
{
    qRegisterMetaType<ModelSummary>();
    qRegisterMetaType<GenerationSettings>();
    qRegisterMetaType<WorkDone>();
    qRegisterMetaType<TraceSnapshot>();
}

ModelWorker::~ModelWorker() = default;

static QString shapeText(const Shape& s) { return QString::fromStdString(shapeToString(s)); }

void ModelWorker::load(const QString& path, const QString& backend)
{
    try {
        const std::filesystem::path dir = resolveModelPath(path.toStdString());
        // interactive: the CPU backend leaves the GUI one core (BackendOptions)
        BackendChoice choice = createBackend(backend.toStdString(), BackendOptions{0, true, ""});
        m_model = loadModel(dir, choice.backend);
        m_state.reset();
        m_tokenizer.reset();
        if (std::filesystem::exists(dir / "tokenizer.json"))
            m_tokenizer = Tokenizer::fromFile(dir / "tokenizer.json");

        const ModelInfo& info = m_model->info();
        ModelSummary s;
        s.path = QString::fromStdString(dir.string());
        s.name = QString::fromStdString(dir.filename().string());
        s.revision = QString::fromStdString(cacheRevisionOf(dir));
        if (!s.revision.isEmpty()) // a cache snapshot: name it after the repository
            s.name = QString::fromStdString(dir.parent_path().parent_path().filename().string())
                         .section("--", 1)
                         .replace("--", "/");
        s.architecture = QString::fromStdString(info.architecture);
        s.backend = QString::fromStdString(choice.backend->description());
        if (!choice.notice.empty())
            s.backend += QStringLiteral(" — ") + QString::fromStdString(choice.notice);
        s.weightDType = QString::fromStdString(info.weightDType);
        s.layers = info.layers;
        s.dModel = info.dModel;
        s.vocabRows = info.vocabRows;
        s.parameters = info.parameters;
        s.loadedBytes = qint64(info.loadedBytes);
        s.stateBytes = qint64(info.stateBytesPerSequence);
        s.dInner = info.dInner;
        s.dState = info.dState;
        s.dConv = info.dConv;
        s.dtRank = info.dtRank;
        for (const auto& m : info.layerMixer)
            s.layerMixer << QString::fromStdString(m);
        for (const auto& [k, v] : info.facts)
            s.facts.append({QString::fromStdString(k), QString::fromStdString(v)});
        s.hasTokenizer = m_tokenizer.has_value();
        s.tiedEmbeddings = info.tiedEmbeddings;
        // A model card written by our own tools says whether the weights were trained.
        QFile card(QString::fromStdString((dir / "archlens_card.json").string()));
        if (card.open(QIODevice::ReadOnly)) {
            const QJsonObject o = QJsonDocument::fromJson(card.readAll()).object();
            s.untrained = o.value("trained").isBool() && !o.value("trained").toBool();
            s.label = o.value("label").toString();
            if (o.contains("name"))
                s.name = o.value("name").toString();
        }
        const Checkpoint ckpt = Checkpoint::open(dir);
        for (const auto& n : ckpt.names()) {
            const SafetensorInfo& ti = ckpt.info(n);
            s.tensors.append({QString::fromStdString(n), shapeText(ti.shape),
                              QString::fromUtf8(stDTypeName(ti.dtype).data(), int(stDTypeName(ti.dtype).size()))});
        }
        m_summary = s;
        emit loaded(s);
    } catch (const std::exception& e) {
        m_model.reset();
        emit failed(tr("Could not open the model"), QString::fromUtf8(e.what()));
    }
}

QString ModelWorker::tokenText(int32_t id) const
{
    if (m_tokenizer && id < m_tokenizer->vocabSize())
        return QString::fromStdString(m_tokenizer->tokenText(id));
    return QStringLiteral("#%1").arg(id);
}

RunMeta ModelWorker::baseMeta() const
{
    RunMeta m;
    m.modelName = m_summary.name;
    m.modelPath = m_summary.path;
    m.architecture = m_summary.architecture;
    m.revision = m_summary.revision;
    m.backend = QString::fromStdString(m_model->backend().name());
    m.prompt = m_prompt;
    m.seed = m_seedUsed;
    m.dInner = m_summary.dInner;
    m.dState = m_summary.dState;
    m.layers = m_summary.layers;
    m.layerMixer = m_summary.layerMixer;
    m.untrained = m_summary.untrained;
    m.source = QStringLiteral("live");
    return m;
}

void ModelWorker::feed(const std::vector<int32_t>& ids, ForwardMode mode)
{
    const Tensor logits = m_model->forward(ids, *m_state, m_sink.get(), mode, /*allLogits=*/true); // (T, V)
    const int64_t V = logits.dim(1);
    std::vector<float> probs(static_cast<size_t>(V));
    std::vector<int32_t> order(static_cast<size_t>(V));
    QStringList texts;
    QVector<QVector<Prediction>> top5;
    for (size_t t = 0; t < ids.size(); ++t) {
        const float* row = logits.f32() + int64_t(t) * V;
        softmax(row, probs.data(), V);
        std::iota(order.begin(), order.end(), 0);
        const size_t k = std::min<size_t>(5, order.size());
        std::partial_sort(order.begin(), order.begin() + long(k), order.end(),
                          [&](int32_t a, int32_t b) { return probs[size_t(a)] > probs[size_t(b)]; });
        QVector<Prediction> top;
        for (size_t j = 0; j < k; ++j)
            top.append({order[j], tokenText(order[j]), probs[size_t(order[j])]});
        top5.append(top);
        texts << tokenText(ids[t]);
    }
    if (!m_logitsDropped && (m_logits.size() + size_t(logits.numel())) * sizeof(float) <= kMaxLogitBytes)
        m_logits.insert(m_logits.end(), logits.f32(), logits.f32() + logits.numel());
    else
        m_logits.clear(), m_logits.shrink_to_fit(), m_logitsDropped = true;
    m_lastLogits = logits.rows(logits.dim(0) - 1, logits.dim(0)).clone();
    m_sink->addTokens(ids, texts, top5);
    emit dataReady();
}

void ModelWorker::start(const QString& prompt, bool feedAll, const GenerationSettings& settings)
{
    if (!m_model) {
        emit failed(tr("No model"), tr("Open a model first."));
        return;
    }
    try {
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        std::vector<int32_t> ids;
        if (m_tokenizer) {
            ids = m_tokenizer->encode(prompt.toStdString(), true);
        } else {
            for (const QString& part : prompt.split(',', Qt::SkipEmptyParts))
                ids.push_back(part.trimmed().toInt());
        }
        for (int32_t id : ids)
            if (id < 0 || id >= m_model->info().vocabRows)
                throw makeError(ErrorCode::InvalidArgument, "token id {} is outside the vocabulary (0..{})", id,
                                m_model->info().vocabRows - 1);
        if (ids.empty()) {
            emit failed(tr("Nothing to run"), tr("The prompt encodes to no tokens."));
            return;
        }
        m_prompt = prompt;
        m_seedUsed = settings.temperature > 0 ? settings.seed : -1;
        m_rng = uint64_t(settings.seed);
        m_state = m_model->newState();
        m_logits.clear();
        m_logitsDropped = false;
        m_sink->reset(baseMeta());
        m_promptLeft = ids;
        const size_t total = feedAll ? ids.size() : 1;
        size_t done = 0;
        // Through the chunk path in pieces, so progress and cancel stay live on long prompts.
        while (done < total) {
            if (cancel) {
                m_promptLeft.erase(m_promptLeft.begin(), m_promptLeft.begin() + long(done));
                emit promptLeft(int(m_promptLeft.size()));
                emit finished({QStringLiteral("prefill"), int(done), double(timer.nsecsElapsed()) / 1e9, true});
                return;
            }
            const size_t n = std::min(total - done, size_t(std::max(1, prefillChunk.load())));
            feed(std::vector<int32_t>(ids.begin() + long(done), ids.begin() + long(done + n)), ForwardMode::Chunk);
            done += n;
            emit progress(int(done), int(total));
        }
        m_promptLeft.erase(m_promptLeft.begin(), m_promptLeft.begin() + long(done));
        emit promptLeft(int(m_promptLeft.size()));
        emit finished({QStringLiteral("prefill"), int(done), double(timer.nsecsElapsed()) / 1e9, false});
    } catch (const std::exception& e) {
        emit failed(tr("The run failed"), QString::fromUtf8(e.what()));
    }
}

int32_t ModelWorker::sampleNext(const GenerationSettings& s)
{
    SamplingParams p;
    p.temperature = s.temperature;
    p.topK = s.topK;
    p.topP = s.topP;
    if (m_seedUsed < 0 && s.temperature > 0) { // first sampled token of this run: seed it
        m_seedUsed = s.seed;
        m_rng = uint64_t(s.seed);
    }
    return m_model->backend().sample(m_lastLogits, p, m_rng);
}

void ModelWorker::stepOne(const GenerationSettings& settings)
{
    if (!m_model || !m_state) {
        emit failed(tr("Nothing to step"), tr("Run a prompt first."));
        return;
    }
    try {
        QElapsedTimer timer;
        timer.start();
        int32_t id;
        if (!m_promptLeft.empty()) {
            id = m_promptLeft.front();
            m_promptLeft.erase(m_promptLeft.begin());
        } else {
            id = sampleNext(settings);
        }
        feed({id}, ForwardMode::Recurrent);
        emit promptLeft(int(m_promptLeft.size()));
        emit finished({QStringLiteral("step"), 1, double(timer.nsecsElapsed()) / 1e9, false});
    } catch (const std::exception& e) {
        emit failed(tr("The step failed"), QString::fromUtf8(e.what()));
    }
}

void ModelWorker::generate(const GenerationSettings& settings)
{
    if (!m_model || !m_state) {
        emit failed(tr("Nothing to continue"), tr("Run a prompt first."));
        return;
    }
    try {
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        const int64_t eos = m_model->info().eosTokenId;
        int made = 0;
        while (made < settings.maxTokens) {
            if (cancel) {
                emit finished({QStringLiteral("generate"), made, double(timer.nsecsElapsed()) / 1e9, true});
                return;
            }
            int32_t id;
            const bool fromPrompt = !m_promptLeft.empty();
            if (fromPrompt) {
                id = m_promptLeft.front();
                m_promptLeft.erase(m_promptLeft.begin());
            } else {
                id = sampleNext(settings);
            }
            feed({id}, ForwardMode::Recurrent);
            if (!fromPrompt)
                ++made;
            emit progress(made, settings.maxTokens);
            if (!fromPrompt && id == eos && !m_summary.untrained)
                break;
        }
        emit promptLeft(int(m_promptLeft.size()));
        emit finished({QStringLiteral("generate"), made, double(timer.nsecsElapsed()) / 1e9, false});
    } catch (const std::exception& e) {
        emit failed(tr("Generation failed"), QString::fromUtf8(e.what()));
    }
}

void ModelWorker::openTrace(const QString& path)
{
    try {
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        m_logits.clear();
        m_logitsDropped = true; // the replay's logits stay in its file
        m_state.reset(); // a replay has no live state to continue from
        m_promptLeft.clear();
        const int n = replayTrace(path.toStdString(), *m_sink, cancel, [this](int done, int total) {
            emit dataReady();
            emit progress(done, total);
        });
        emit finished({QStringLiteral("trace"), n, double(timer.nsecsElapsed()) / 1e9, false});
    } catch (const Error& e) {
        if (e.code() == ErrorCode::Cancelled)
            emit finished({QStringLiteral("trace"), 0, 0, true});
        else
            emit failed(tr("Could not open the trace"), QString::fromUtf8(e.what()));
    } catch (const std::exception& e) {
        emit failed(tr("Could not open the trace"), QString::fromUtf8(e.what()));
    }
}

void ModelWorker::saveTrace(const QString& path, const TraceSnapshot& snapshot)
{
    try {
        QElapsedTimer timer;
        timer.start();
        const bool withLogits = !m_logitsDropped && m_model &&
                                m_logits.size() == snapshot.ids.size() * size_t(m_model->info().vocabRows);
        writeTrace(path.toStdString(), snapshot, withLogits ? &m_logits : nullptr,
                   m_model ? m_model->info().vocabRows : 0);
        emit finished({QStringLiteral("save"), int(snapshot.ids.size()), double(timer.nsecsElapsed()) / 1e9, false});
    } catch (const std::exception& e) {
        emit failed(tr("Could not save the trace"), QString::fromUtf8(e.what()));
    }
}

} // namespace archlens::ui
