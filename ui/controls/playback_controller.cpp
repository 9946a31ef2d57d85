#include "controls/playback_controller.h"

#include "session/selection.h"
#include "session/session_controller.h"

namespace archlens::ui {

PlaybackController::PlaybackController(SessionController* session, Selection* selection, QObject* parent)
    : QObject(parent)
    , m_session(session)
    , m_sel(selection)
{
    m_timer.setTimerType(Qt::PreciseTimer);
    connect(&m_timer, &QTimer::timeout, this, &PlaybackController::tick);
    setSpeed(m_speed);
    TraceModel* model = session->model();
    connect(model, &TraceModel::grew, this, [this](int oldCount, int newCount) {
        if (m_sel->token() < 0 || m_sel->token() >= oldCount - 1)
            m_sel->setToken(newCount - 1);
    });
    connect(model, &TraceModel::cleared, this, [this] { m_sel->setToken(-1); });
}

void PlaybackController::setSpeed(double sps)
{
    m_speed = std::clamp(sps, 0.25, 240.0);
    m_timer.setInterval(int(std::lround(1000.0 / m_speed)));
}

void PlaybackController::setPlaying(bool on)
{
    if (on == m_playing)
        return;
    m_playing = on;
    if (on)
        m_timer.start();
    else
        m_timer.stop();
    emit playingChanged(on);
}

void PlaybackController::stepForward()
{
    const int n = m_session->model()->tokenCount();
    const int t = m_sel->token();
    if (t + 1 < n) {
        m_sel->setToken(t + 1);
        return;
    }
    const bool live = m_session->model()->meta().source == QLatin1String("live");
    if (m_extend && live && m_session->hasModel() && !m_session->isBusy() && n > 0)
        m_session->step(m_settings ? m_settings() : GenerationSettings{});
    else if (!live || !m_extend)
        setPlaying(false);
}

void PlaybackController::stepBack()
{
    if (m_sel->token() > 0)
        m_sel->setToken(m_sel->token() - 1);
}

void PlaybackController::home()
{
    if (m_session->model()->tokenCount() > 0)
        m_sel->setToken(0);
}

void PlaybackController::end()
{
    if (m_session->model()->tokenCount() > 0)
        m_sel->setToken(m_session->model()->tokenCount() - 1);
}

void PlaybackController::tick()
{
    if (m_session->isBusy())
        return; // the token being computed arrives first; then the cursor moves on
    stepForward();
}

} // namespace archlens::ui
