#!/usr/bin/env bash
# Debian 12 system packages for the plant integrations and their tests:
#   mosquitto (MQTT broker for the mqtt tests), chromium + chromium-driver (dashboard browser tests),
#   gir1.2-aravis-0.8 + aravis-tools (GenICam cameras; arv-fake-gv-camera-0.8 for the genicam tests),
#   ffmpeg (the live-stream tests serve real MPEG-TS, raw H.264 and raw MJPEG cameras on loopback with it),
#   gstreamer1.0-rtsp + gir1.2-gst-rtsp-server-1.0 + python3-gi + GStreamer plug-ins (the rtsp tests serve a real
#   RTSP camera, H.264 and MJPEG, on loopback with gst-rtsp-server run by Debian's python3: tests/pipeline/rtsp_server.py),
#   and what PyGObject needs to build from source in a venv (girepository 1.0, cairo, a C compiler).
# Then: pip install -e ".[integrations]"
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    mosquitto chromium chromium-driver gir1.2-aravis-0.8 aravis-tools ffmpeg \
    gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-ugly \
    libgirepository1.0-dev libcairo2-dev pkg-config gcc python3-dev >/dev/null
