#include "main_window_util.h"

#include <QHeaderView>
#include <QMap>
#include <QTableWidget>
#include <QTreeWidget>

#include "session/model_worker.h"

namespace archlens::ui {

QString humanBytes(qint64 b)
{
    if (b >= (qint64(1) << 30))
        return QStringLiteral("%1 GiB").arg(double(b) / double(qint64(1) << 30), 0, 'f', 2);
    if (b >= (1 << 20))
        return QStringLiteral("%1 MiB").arg(double(b) / double(1 << 20), 0, 'f', 1);
    return QStringLiteral("%1 KiB").arg(double(b) / 1024.0, 0, 'f', 1);
}

QString humanCount(qint64 n)
{
    if (n >= 1000000000)
        return QStringLiteral("%1B").arg(double(n) / 1e9, 0, 'f', 2);
    if (n >= 1000000)
        return QStringLiteral("%1M").arg(double(n) / 1e6, 0, 'f', 2);
    if (n >= 1000)
        return QStringLiteral("%1K").arg(double(n) / 1e3, 0, 'f', 1);
    return QString::number(n);
}

void fillStructure(QTreeWidget* tree, const ModelSummary& s)
{
    // the embedding, then the layers in order, then the final norm and head
    tree->clear();
    auto* root = new QTreeWidgetItem(tree, {s.name, QString(), s.weightDType});
    QMap<int, QVector<QStringList>> perLayer;
    QVector<QStringList> before, after;
    for (const QStringList& t : s.tensors) {
        const int at = t[0].indexOf(QStringLiteral(".layers."));
        if (at >= 0) {
            const int start = at + 8, end = t[0].indexOf('.', start);
            perLayer[t[0].mid(start, end - start).toInt()].append({t[0].mid(end + 1), t[1], t[2]});
        } else {
            (t[0].contains(QStringLiteral("embed")) ? before : after).append(t);
        }
    }
    for (const QStringList& t : before)
        new QTreeWidgetItem(root, t);
    for (auto it = perLayer.cbegin(); it != perLayer.cend(); ++it) {
        const QString mixer = it.key() < s.layerMixer.size() ? s.layerMixer[it.key()] : QString();
        auto* layer = new QTreeWidgetItem(root, {QObject::tr("layer %1 · %2").arg(it.key()).arg(mixer)});
        for (const QStringList& t : it.value())
            new QTreeWidgetItem(layer, t);
        if (it == perLayer.cbegin())
            layer->setExpanded(true);
    }
    for (const QStringList& t : after)
        new QTreeWidgetItem(root, t);
    if (s.tiedEmbeddings)
        new QTreeWidgetItem(root, {QObject::tr("lm_head (tied: reuses the embedding)"), QString(), QString()});
    root->setExpanded(true);
}

void fillFacts(QTableWidget* table, const ModelSummary& s)
{
    QVector<QPair<QString, QString>> facts = {
        {QObject::tr("Architecture"), s.architecture},
        {QObject::tr("Layers"), QString::number(s.layers)},
        {QObject::tr("d_model"), QString::number(s.dModel)},
        {QObject::tr("Vocabulary rows"), QString::number(s.vocabRows)},
        {QObject::tr("Parameters"), humanCount(s.parameters)},
        {QObject::tr("Weights stored as"), s.weightDType},
        {QObject::tr("State per sequence"), humanBytes(s.stateBytes)},
        {QObject::tr("Tokenizer"), s.hasTokenizer ? QObject::tr("tokenizer.json") : QObject::tr("none (enter ids: 1,2,3)")},
    };
    if (!s.revision.isEmpty())
        facts.append({QObject::tr("Revision"), s.revision});
    facts += s.facts;
    facts.append({QObject::tr("Folder"), s.path});
    table->setRowCount(int(facts.size()));
    for (int i = 0; i < facts.size(); ++i) {
        table->setItem(i, 0, new QTableWidgetItem(facts[i].first));
        auto* value = new QTableWidgetItem(facts[i].second);
        value->setToolTip(facts[i].second);
        table->setItem(i, 1, value);
    }
    table->resizeColumnToContents(0);
}

} // namespace archlens::ui
