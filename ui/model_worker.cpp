#include "model_worker.h"

#include <QElapsedTimer>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>

#include <algorithm>
#include <numeric>

#include "backends/backend_factory.h"
#include "base/error.h"
#include "formats/safetensors.h"
#include "ops/math.h"

namespace archlens::ui {

ModelWorker::ModelWorker()
{
    qRegisterMetaType<ModelSummary>();
    qRegisterMetaType<RunResult>();
}

ModelWorker::~ModelWorker() = default;

static QString shapeText(const Shape& s) { return QString::fromStdString(shapeToString(s)); }

void ModelWorker::load(const QString& path, const QString& backend)
{
    try {
        const std::filesystem::path dir = path.toStdString();
        // interactive: the CPU backend leaves the GUI one core (BackendOptions)
        BackendChoice choice = createBackend(backend.toStdString(), BackendOptions{0, true, ""});
        m_model = loadModel(dir, choice.backend);
        m_tokenizer.reset();
        if (std::filesystem::exists(dir / "tokenizer.json"))
            m_tokenizer = Tokenizer::fromFile(dir / "tokenizer.json");

        const ModelInfo& info = m_model->info();
        ModelSummary s;
        s.path = path;
        s.name = QString::fromStdString(dir.filename().string());
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
        emit loaded(s);
    } catch (const std::exception& e) {
        m_model.reset();
        emit failed(tr("Could not open the model"), QString::fromUtf8(e.what()));
    }
}

void ModelWorker::run(const QString& prompt)
{
    if (!m_model) {
        emit failed(tr("No model"), tr("Open a model first."));
        return;
    }
    try {
        cancel = false;
        RunResult r;
        QElapsedTimer timer;
        timer.start();
        std::vector<int32_t> ids;
        if (m_tokenizer) {
            ids = m_tokenizer->encode(prompt.toStdString(), true);
        } else {
            for (const QString& part : prompt.split(',', Qt::SkipEmptyParts))
                ids.push_back(part.trimmed().toInt());
        }
        if (ids.empty()) {
            emit failed(tr("Nothing to run"), tr("The prompt encodes to no tokens."));
            return;
        }
        auto tokenText = [&](int32_t id) {
            if (m_tokenizer && id < m_tokenizer->vocabSize())
                return QString::fromStdString(m_tokenizer->tokenText(id));
            return QStringLiteral("#%1").arg(id);
        };
        auto state = m_model->newState();
        const int64_t V = m_model->info().vocabRows;
        std::vector<float> probs(static_cast<size_t>(V));
        std::vector<int32_t> order(static_cast<size_t>(V));
        // Token by token through the recurrent path, so progress and cancel are live.
        for (size_t t = 0; t < ids.size(); ++t) {
            if (cancel) {
                emit failed(tr("Cancelled"), tr("The run was cancelled."));
                return;
            }
            const int32_t one[1] = {ids[t]};
            const Tensor logits = m_model->forward(one, *state, nullptr, ForwardMode::Recurrent, false);
            softmax(logits.f32(), probs.data(), V);
            std::iota(order.begin(), order.end(), 0);
            const size_t k = std::min<size_t>(5, order.size());
            std::partial_sort(order.begin(), order.begin() + long(k), order.end(),
                              [&](int32_t a, int32_t b) { return probs[size_t(a)] > probs[size_t(b)]; });
            QVector<Prediction> top;
            for (size_t j = 0; j < k; ++j)
                top.append({order[j], tokenText(order[j]), probs[size_t(order[j])]});
            r.ids.append(ids[t]);
            r.texts.append(tokenText(ids[t]));
            r.top5.append(top);
            emit progress(int(t + 1), int(ids.size()));
        }
        r.seconds = double(timer.nsecsElapsed()) / 1e9;
        emit ran(r);
    } catch (const std::exception& e) {
        emit failed(tr("The run failed"), QString::fromUtf8(e.what()));
    }
}

} // namespace archlens::ui
