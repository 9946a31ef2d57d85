#include "token_strip.h"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QPaintEvent>

#include <algorithm>

namespace archlens::ui {

namespace {
constexpr int kPad = 6, kGap = 4, kRowGap = 6, kIndexHeight = 12;
}

TokenStrip::TokenStrip(QWidget* parent)
    : QWidget(parent)
{
    setFocusPolicy(Qt::StrongFocus);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
}

QString TokenStrip::visibleText(const QString& text)
{
    QString s = text;
    s.replace(' ', QChar(0x2423));  // ␣ open box
    s.replace('\n', QChar(0x21B5)); // ↵
    s.replace('\t', QChar(0x2192)); // →
    return s.isEmpty() ? QStringLiteral("∅") : s;
}

void TokenStrip::setTokens(const QVector<int>& ids, const QStringList& texts)
{
    m_ids = ids;
    m_texts = texts;
    m_layoutWidth = -1;
    m_current = ids.isEmpty() ? -1 : int(ids.size()) - 1;
    layoutTokens(width());
    updateGeometry();
    update();
    emit currentChanged(m_current);
}

void TokenStrip::appendTokens(const QVector<int>& ids, const QStringList& texts)
{
    const int first = int(m_ids.size());
    m_ids += ids;
    m_texts += texts;
    layoutFrom(first, width());
    setMinimumHeight(m_height);
    updateGeometry();
    update();
}

void TokenStrip::clear()
{
    m_ids.clear();
    m_texts.clear();
    m_rects.clear();
    m_layoutWidth = -1;
    m_current = -1;
    layoutTokens(width());
    setMinimumHeight(m_height);
    update();
}

void TokenStrip::setCurrent(int index)
{
    if (index < 0 || index >= m_ids.size() || index == m_current)
        return;
    const int old = m_current;
    m_current = index;
    if (old >= 0 && old < m_rects.size())
        update(m_rects[old].adjusted(-3, -3, 3, 3));
    update(m_rects[index].adjusted(-3, -3, 3, 3));
    emit currentRectChanged(m_rects[index]);
    emit currentChanged(index);
}

void TokenStrip::layoutTokens(int width)
{
    if (width == m_layoutWidth && m_rects.size() == m_texts.size())
        return; // laid out already: appends extend the layout incrementally
    m_rects.clear();
    layoutFrom(0, width);
}

void TokenStrip::layoutFrom(int first, int width)
{
    const QFontMetrics fm(font());
    m_rects.resize(first);
    const int h = fm.height() + 8 + kIndexHeight;
    int x = kPad, y = kPad;
    if (first > 0) {
        x = m_rects.back().right() + 1 + kGap;
        y = m_rects.back().top();
    }
    for (int i = first; i < m_texts.size(); ++i) {
        const QString& t = m_texts[i];
        const int w = std::max(fm.horizontalAdvance(visibleText(t)) + 10, fm.horizontalAdvance(QStringLiteral("0000")));
        if (x + w > width - kPad && x > kPad) {
            x = kPad;
            y += h + kRowGap;
        }
        m_rects.append(QRect(x, y, w, h));
        x += w + kGap;
    }
    m_height = m_rects.isEmpty() ? h + 2 * kPad : m_rects.back().bottom() + kPad;
    m_layoutWidth = width;
}

int TokenStrip::heightForWidth(int width) const
{
    auto* self = const_cast<TokenStrip*>(this);
    self->layoutTokens(width);
    return m_height;
}

QSize TokenStrip::sizeHint() const { return QSize(600, m_height); }

void TokenStrip::resizeEvent(QResizeEvent*)
{
    layoutTokens(width());
    setMinimumHeight(m_height);
}

void TokenStrip::paintEvent(QPaintEvent* e)
{
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QPalette pal = palette();
    if (m_ids.isEmpty()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(rect().adjusted(kPad, 0, 0, 0), Qt::AlignVCenter | Qt::AlignLeft,
                   tr("Type a prompt and press Run to see its tokens."));
        return;
    }
    QFont small = font();
    small.setPointSizeF(std::max(6.0, font().pointSizeF() * 0.75));
    // only the rows in the exposed rectangle: rects are sorted by row
    const QRect exposed = e->rect();
    const auto firstVisible = std::lower_bound(m_rects.cbegin(), m_rects.cend(), exposed.top(),
                                               [](const QRect& r, int top) { return r.bottom() + kRowGap < top; });
    for (int i = int(firstVisible - m_rects.cbegin()); i < m_rects.size(); ++i) {
        const QRect r = m_rects[i];
        if (r.top() > exposed.bottom())
            break;
        const QRect box = r.adjusted(0, 0, 0, -kIndexHeight);
        const bool cur = i == m_current;
        p.setPen(cur ? QPen(pal.color(QPalette::Highlight), 2) : QPen(pal.color(QPalette::Mid), 1));
        p.setBrush(cur ? pal.color(QPalette::Highlight).lighter(170) : pal.color(QPalette::Base));
        p.drawRoundedRect(box, 4, 4);
        p.setPen(cur ? pal.color(QPalette::Text) : pal.color(QPalette::Text));
        p.setFont(font());
        p.drawText(box, Qt::AlignCenter, visibleText(m_texts[i]));
        p.setFont(small);
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(QRect(r.left(), box.bottom(), r.width(), kIndexHeight), Qt::AlignCenter, QString::number(i));
    }
}

void TokenStrip::mousePressEvent(QMouseEvent* e)
{
    for (int i = 0; i < m_rects.size(); ++i)
        if (m_rects[i].contains(e->position().toPoint())) {
            setCurrent(i);
            return;
        }
}

void TokenStrip::keyPressEvent(QKeyEvent* e)
{
    switch (e->key()) {
    case Qt::Key_Left:
    case Qt::Key_Right:
    case Qt::Key_Home:
    case Qt::Key_End: emit keyStep(e->key()); break;
    default: QWidget::keyPressEvent(e);
    }
}

} // namespace archlens::ui
