// Selection: what the student is looking at, shared by every view of a window so that
// choosing a token, layer, channel or state dimension in one view highlights it in all.
#pragma once

#include <QObject>

namespace archlens::ui {

class Selection : public QObject {
    Q_OBJECT
public:
    using QObject::QObject;
    int token() const { return m_token; }
    int layer() const { return m_layer; }
    int channel() const { return m_channel; }
    int stateDim() const { return m_stateDim; }

    void setToken(int t)
    {
        if (t != m_token) {
            m_token = t;
            emit tokenChanged(t);
            emit changed();
        }
    }
    void setLayer(int l)
    {
        if (l != m_layer) {
            m_layer = l;
            emit layerChanged(l);
            emit changed();
        }
    }
    void setChannel(int c)
    {
        if (c != m_channel) {
            m_channel = c;
            emit channelChanged(c);
            emit changed();
        }
    }
    void setStateDim(int n)
    {
        if (n != m_stateDim) {
            m_stateDim = n;
            emit stateDimChanged(n);
            emit changed();
        }
    }

signals:
    void tokenChanged(int);
    void layerChanged(int);
    void channelChanged(int);
    void stateDimChanged(int);
    void changed();

private:
    int m_token = -1, m_layer = 0, m_channel = 0, m_stateDim = 0;
};

} // namespace archlens::ui
