// TokenStrip: the tokens as text pieces with their positions, wrapped into rows; the
// current token is highlighted and a click selects one. Layout is incremental and painting
// touches only the rows in the exposed rectangle, so thousands of tokens stay cheap. Token text is shown
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
    // Adds tokens at the end: only the new ones are laid out (long generations stay cheap).
    void appendTokens(const QVector<int>& ids, const QStringList& texts);
    void clear();
    int current() const { return m_current; }
    int count() const { return int(m_ids.size()); }
    void setCurrent(int index);
    QSize sizeHint() const override;
    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int width) const override;
    static QString visibleText(const QString& text);

signals:
    void currentChanged(int index);
    void keyStep(int key); // ←/→/Home/End pressed here: the window decides what stepping means
    void currentRectChanged(const QRect& r); // for scrolling the current token into view

protected:
    void paintEvent(QPaintEvent* e) override;
    void mousePressEvent(QMouseEvent* e) override;
    void keyPressEvent(QKeyEvent* e) override;
    void resizeEvent(QResizeEvent*) override;

private:
    void layoutTokens(int width);
    void layoutFrom(int first, int width);
    QVector<int> m_ids;
    QStringList m_texts;
    QVector<QRect> m_rects;
    int m_current = -1;
    int m_height = 40;
    int m_layoutWidth = -1;
};

} // namespace archlens::ui
