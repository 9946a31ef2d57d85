// PlaybackController: the cursor over a session's tokens. ←/→ step one token, Home/End jump,
// Space plays at a chosen speed. Inside the computed range a step only moves the cursor (the
// views redraw from stored frames); at its end it asks the session for one more token, the
// next prompt token or a generated one through the recurrent step. When the data grows and
// the cursor sat on the last token, the cursor follows the new end.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

#include <functional>

#include "session/model_worker.h"

namespace archlens::ui {

class SessionController;
class Selection;

class PlaybackController : public QObject {
    Q_OBJECT
public:
    PlaybackController(SessionController* session, Selection* selection, QObject* parent = nullptr);
    void setSettingsProvider(std::function<GenerationSettings()> f) { m_settings = std::move(f); }

    void stepForward();
    void stepBack();
    void home();
    void end();
    void togglePlay() { setPlaying(!m_playing); }
    void setPlaying(bool on);
    bool playing() const { return m_playing; }
    void setSpeed(double stepsPerSecond);
    double speed() const { return m_speed; }
    // When false, → stops at the end of the computed range instead of computing a token.
    void setExtendAtEnd(bool on) { m_extend = on; }

signals:
    void playingChanged(bool playing);

private:
    void tick();
    SessionController* m_session;
    Selection* m_sel;
    std::function<GenerationSettings()> m_settings;
    QTimer m_timer;
    bool m_playing = false;
    bool m_extend = true;
    double m_speed = 8;
};

} // namespace archlens::ui
