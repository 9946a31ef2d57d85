// TokenStrip: the prompt's tokens as text pieces with their positions, wrapped into
// rows; the current token is highlighted and a click selects one. Token text is shown
// with visible markers for spaces and newlines so students see how text was split.
#pragma once

#include <QStringList>
#include <QVector>
#include <QWidget>

namespace archlens::ui {

class TokenStrip : public QWidget {
    Q_OBJECT
public:
    explicit TokenStrip(QWidget* parent = nullptr);
    void setTokens(const QVector<int>& ids, const QStringList& texts);
    int current() const { return m_current; }
    int count() const { return int(m_ids.size()); }
    void setCurrent(int index);
    QSize sizeHint() const override;
    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int width) const override;
    static QString visibleText(const QString& text);

signals:
    void currentChanged(int index);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* e) override;
    void keyPressEvent(QKeyEvent* e) override;
    void resizeEvent(QResizeEvent*) override;

private:
    void layoutTokens(int width);
    QVector<int> m_ids;
    QStringList m_texts;
    QVector<QRect> m_rects;
    int m_current = -1;
    int m_height = 40;
};

} // namespace archlens::ui
