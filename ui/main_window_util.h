// Small helpers of the main window: byte and count formatting, and filling the model
// structure tree and facts table from a ModelSummary.
#pragma once

#include <QString>

class QTableWidget;
class QTreeWidget;

namespace archlens::ui {

struct ModelSummary;

QString humanBytes(qint64 bytes);
QString humanCount(qint64 n);
void fillStructure(QTreeWidget* tree, const ModelSummary& s);
void fillFacts(QTableWidget* table, const ModelSummary& s);

} // namespace archlens::ui
