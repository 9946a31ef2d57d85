#include "export/exporter.h"

#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QPageLayout>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QSaveFile>
#include <QSvgGenerator>

#include <fmt/format.h>

#include "base/error.h"
#include "views/figure.h"

namespace archlens::ui {

namespace {

void paintSheet(QPainter& p, const QRectF& area, const QVector<Figure*>& figs)
{
    const Theme theme = Theme::paperTheme();
    p.fillRect(area, theme.background);
    qreal total = 0;
    for (Figure* f : figs)
        total += f->preferredSize().height();
    qreal y = area.top();
    for (Figure* f : figs) {
        const qreal h = area.height() * f->preferredSize().height() / std::max<qreal>(total, 1);
        p.save();
        f->paint(p, QRectF(area.left(), y, area.width(), h), theme, synchronousImages());
        p.restore();
        y += h;
    }
}

QString describe(const QMap<QString, QString>& m)
{
    QString d;
    for (auto it = m.cbegin(); it != m.cend(); ++it)
        d += it.key() + ": " + it.value() + '\n';
    return d.trimmed();
}

QString xmlEscape(QString s) { return s.toHtmlEscaped(); }

} // namespace

QMap<QString, QString> exportMetadata(const QVector<Figure*>& figs)
{
    QMap<QString, QString> m;
    if (figs.isEmpty())
        return m;
    const RunMeta& meta = figs.front()->model()->meta();
    QStringList views, layers;
    for (Figure* f : figs) {
        views << f->key();
        layers << QString::number(f->layer());
    }
    m["model"] = meta.modelName;
    m["model_path"] = meta.modelPath;
    m["revision"] = meta.revision;
    m["prompt"] = meta.prompt;
    m["layer"] = layers.join(',');
    m["seed"] = QString::number(meta.seed);
    m["view"] = views.join(',');
    m["token"] = QString::number(figs.front()->token());
    m["title"] = figs.size() == 1 ? figs.front()->title() : QStringLiteral("%1 · %2").arg(meta.modelName, views.join(", "));
    m["software"] = QStringLiteral("ArchLens");
    return m;
}

void exportFigures(const QString& file, const QVector<Figure*>& figs, const ExportOptions& o)
{
    if (figs.isEmpty())
        throw Error(ErrorCode::InvalidArgument, "nothing to export");
    if (o.size.width() < 16 || o.size.height() < 16 || o.size.width() > 20000 || o.size.height() > 20000)
        throw makeError(ErrorCode::InvalidArgument, "export size {}x{} is out of range (16..20000 pixels a side)",
                        o.size.width(), o.size.height());
    if (o.dpi < 24 || o.dpi > 2400)
        throw makeError(ErrorCode::InvalidArgument, "export dpi {} is out of range (24..2400)", o.dpi);
    const QString ext = QFileInfo(file).suffix().toLower();
    const QMap<QString, QString> meta = exportMetadata(figs);
    const std::string name = file.toStdString();
    auto ioError = [&](const QString& why) {
        return Error(ErrorCode::Io, fmt::format("cannot write {}: {}", name, why.toStdString()), name);
    };

    if (ext == "png") {
        QImage img(o.size, QImage::Format_RGB32);
        img.setDotsPerMeterX(int(o.dpi / 0.0254 + 0.5));
        img.setDotsPerMeterY(int(o.dpi / 0.0254 + 0.5));
        img.fill(Qt::white);
        {
            QPainter p(&img);
            p.setRenderHint(QPainter::TextAntialiasing);
            paintSheet(p, QRectF(QPointF(0, 0), QSizeF(o.size)), figs);
        }
        for (auto it = meta.cbegin(); it != meta.cend(); ++it)
            img.setText(it.key() == "title" ? QStringLiteral("Title") : it.key() == "software" ? QStringLiteral("Software")
                                                                                                 : it.key(),
                        it.value());
        img.setText(QStringLiteral("Description"), describe(meta));
        if (!img.save(file, "PNG"))
            throw ioError(QStringLiteral("the PNG writer failed (folder missing or not writable?)"));
        return;
    }
    if (ext == "svg") {
        QSvgGenerator gen;
        gen.setFileName(file);
        gen.setSize(o.size);
        gen.setViewBox(QRect(QPoint(0, 0), o.size));
        gen.setResolution(o.dpi);
        gen.setTitle(meta["title"]);
        gen.setDescription(describe(meta));
        {
            QPainter p;
            if (!p.begin(&gen))
                throw ioError(QStringLiteral("cannot open it for writing"));
            paintSheet(p, QRectF(QPointF(0, 0), QSizeF(o.size)), figs);
            p.end();
        }
        // QSvgGenerator writes <title> and <desc>; add a machine-readable <metadata> block.
        QFile f(file);
        if (!f.open(QIODevice::ReadOnly))
            throw ioError(QStringLiteral("cannot read it back"));
        QString svg = QString::fromUtf8(f.readAll());
        f.close();
        QString block = QStringLiteral("<metadata><archlens:figure xmlns:archlens=\"https://archlens.invalid/ns/figure\"");
        for (auto it = meta.cbegin(); it != meta.cend(); ++it)
            block += QStringLiteral(" archlens:%1=\"%2\"").arg(it.key(), xmlEscape(it.value()).replace('\n', "&#10;"));
        block += QStringLiteral("/></metadata>\n");
        const int at = svg.indexOf(QStringLiteral("</desc>"));
        if (at >= 0)
            svg.insert(at + 7, '\n' + block);
        QSaveFile out(file);
        if (!out.open(QIODevice::WriteOnly) || out.write(svg.toUtf8()) < 0 || !out.commit())
            throw ioError(QStringLiteral("cannot rewrite it"));
        return;
    }
    if (ext == "pdf") {
        QPdfWriter pdf(file);
        pdf.setResolution(o.dpi);
        pdf.setPageSize(QPageSize(QSizeF(o.size.width() * 72.0 / o.dpi, o.size.height() * 72.0 / o.dpi),
                                  QPageSize::Point, QString(), QPageSize::ExactMatch));
        pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
        pdf.setTitle(meta["title"]);
        pdf.setCreator(QStringLiteral("ArchLens"));
        QString xmp = QStringLiteral(
            "<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>"
            "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">"
            "<rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" "
            "xmlns:archlens=\"https://archlens.invalid/ns/figure\">"
            "<dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">%1</rdf:li></rdf:Alt></dc:title>"
            "<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">%2</rdf:li></rdf:Alt></dc:description>")
                          .arg(xmlEscape(meta["title"]), xmlEscape(describe(meta)));
        for (auto it = meta.cbegin(); it != meta.cend(); ++it)
            xmp += QStringLiteral("<archlens:%1>%2</archlens:%1>").arg(it.key(), xmlEscape(it.value()));
        xmp += QStringLiteral("</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>");
        pdf.setDocumentXmpMetadata(xmp.toUtf8());
        QPainter p;
        if (!p.begin(&pdf))
            throw ioError(QStringLiteral("cannot open it for writing"));
        paintSheet(p, QRectF(0, 0, pdf.width(), pdf.height()), figs);
        p.end();
        if (!QFileInfo::exists(file))
            throw ioError(QStringLiteral("the PDF writer failed"));
        return;
    }
    if (ext == "csv") {
        QString text;
        for (Figure* f : figs) {
            if (!text.isEmpty())
                text += '\n';
            text += f->csv();
        }
        QSaveFile out(file);
        if (!out.open(QIODevice::WriteOnly) || out.write(text.toUtf8()) < 0 || !out.commit())
            throw ioError(QStringLiteral("cannot open it for writing"));
        return;
    }
    throw makeError(ErrorCode::InvalidArgument, "{}: unknown export format '.{}' (use .png, .svg, .pdf or .csv)", name,
                    ext.toStdString());
}

} // namespace archlens::ui
