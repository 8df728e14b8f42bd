"""Live streams wider than 8 bits (tcp://, rtsp://, udp://, srt://, http(s) video …), decoded at full depth by the
``ffmpeg`` program, the newest frame kept; and, with the camera's ``live_decoder: ffmpeg``, 8-bit inter-coded ones
(H.264, HEVC, MPEG-4 …: :data:`INTRA_ONLY_CODECS`), so that the frames their decoder makes up after a loss are
told (:class:`Concealment`), which OpenCV cannot.

OpenCV cuts a compressed wide stream (FFV1 ``gray12le`` / ``gbrp16le`` / ``yuv444p16le``, ProRes 4444, 10-bit
HEVC) to 8 bits: 12-bit data in a 16-bit format 239 levels off the same frame as a 16-bit PNG with ``bit_depth:
12`` (:mod:`inspector.pipeline.ffmpeg_frames`, which reads such *recordings* through the program). A live URL
is opened by OpenCV as any other (:class:`inspector.pipeline.sources.CvSource`); when its probe finds such a
stream, :class:`FullDepthUrl` closes that connection and reads the URL with the program instead
(:class:`FullDepthStream`), its frames decoded by the recordings' rule (:func:`ffmpeg_frames.full_depth_decoder`).

The program's output is drained on a thread of its own (:class:`LiveFrames`), as an MJPEG stream's body is
(:class:`inspector.pipeline.http_sources.MjpegStream`): a reader slower than the stream gets the newest frame,
stamped when it came out of the program, and the frames it replaced are counted (``buffers_skipped``). The
pipe carries no timestamps, so how long a frame spent in the socket and the program's demuxer and decoder
before is not known: ``lag_ms`` is None (the rule in :mod:`inspector.pipeline.sources`). ``mode: offline``
keeps every frame instead: the reader waits for each to be taken, and the program for the reader.

A camera reconfigured mid-stream (binning, ROI, another profile: a new sequence header in band) is not scaled
back to the first size, as the program does by default: each frame leaves it at the size it was decoded at,
framed in the pipe by the program's own line for it (:func:`live_command`, :class:`LiveFrames`), so the capture
worker says the change (state ``changed``) as for every other source. A video *file* whose key frames change size
(:mod:`inspector.pipeline.keyframe_layouts`) is read the same way (:class:`FileFrames`, every frame kept): OpenCV's
FFmpeg backend would scale its later frames to the first size, distorting every part after an aspect change.
FFmpeg's MPEG-2 decoder takes a new chroma format (4:2:0 → 4:2:2) only with a new size: a live MPEG-2 stream's
extensions are traced (:data:`MPEG2_TRACE`, :class:`ChromaWatch`) and a change it does not follow reopens the
stream before any frame decoded wrong is read.

A stream that lost data (a packet lost on the link, a reference frame lost) is decoded anyway: the decoder
conceals the loss with made-up pictures. Those frames are told by the program's own log lines
(:class:`Concealment`) and handed on without an image (reason ``concealed``): counted, never inspected, until a
key frame decoded after the loss. A (re)connect joins the stream between key frames: the frames before the
first key frame come without an image too, reason ``before_key_frame`` (a join, not a loss: the reconnect is
counted as one by the capture worker). A live stream over a transport that carries an MPEG-TS as it was sent
(tcp://, udp://, http(s)://, srt://, rtp:// …: :data:`RELAYED_SCHEMES`) is relayed (:func:`relay_command`): its bytes
pass through this process on their way to the decoding program (:class:`ts_feed.StreamFeed`), so that an MPEG-TS
sender's segments played one after another are told from lost packets by the TS packets themselves, as a file's are,
by one rule whichever the transport (an RTP stream's losses by its sequence numbers: :class:`ts_feed.RtpUnwrap`). A
URL is never put on a child's command line (readable by every local user) unless it holds nothing that may be a
secret (:data:`COMMAND_LINE_OPTIONS`): an http(s) one is relayed by :mod:`inspector.pipeline.http_relay` (the URL on its
stdin), an srt:// one holding a ``passphrase`` or ``streamid`` by :mod:`inspector.pipeline.srt_relay` (libsrt, the URL
on its stdin), any other holding more (a user part, an option that relay does not set) is read by the decoding program
itself, its URL in a pipe, its joins still counted as losses. An rtsp:// stream carries its frames in
RTP without a TS: its join is the decoder's (the frames before the first key frame, :class:`Concealment`), and a skipped RTP sequence number a loss (:func:`url_listing`).

An srt:// or rist:// URL (:data:`PROGRAM_ONLY_SCHEMES`) is read by the program whatever the camera's
``live_decoder``: the FFmpeg inside OpenCV's pip wheels has no such protocol, so OpenCV cannot even probe it; ffprobe
finds the stream's kind instead (:func:`probe_stream`), and without a program that reads the protocol the camera
fails at its first open in one permanent line saying what to install.

States, as CvSource's: no first frame within ``open_timeout_s`` or the program exiting (the stream ended, the
sender went away) is a transient SourceError, so the capture worker reconnects with back-off; closing kills
the program. The program's own lines (its stderr: URLs with their passwords, decoder complaints) never reach
the daemon's stderr; the last one written after the last frame says, redacted, why a stream ended (none: the
program's exit code).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.parse
from typing import Callable, NamedTuple

import cv2
import numpy as np

from inspector.data.images import FrameLayout, ImageRejected
from inspector.pipeline import ffmpeg_frames, http_relay, keyframe_layouts, programs, rtsp_probe, srt_relay, ts_feed
from inspector.pipeline import pixel_formats as pf
from inspector.pipeline.recording_ends import is_ts
from inspector.pipeline.config import _URL_SCHEMES, CameraSection
from inspector.pipeline.source_base import (ChosenAtOpen, Grabbed, Source, SourceChanged, SourceMisconfigured,
                                            stamp_now)
from inspector.redact import TRANSPORT_OPTIONS, redact

_FOLLOW_PROBE_BYTES = 32768  # a recording read as it grows: the program's probe ends once it read this much …
_FOLLOW_ANALYZE_US = 100_000  # … or this much of the stream (µs): as sources._PROBE_BYTES for a live URL
_STDERR_LINES = 5  # the program's last lines since its last frame kept, for the reason a stream ended
# Frames a decoder may hold between decoding a packet and outputting its frame: the largest H.264 / HEVC
# decoded picture buffer. A key frame output at least this many frames after a decode error was decoded after
# it (so it and what follows do not lean on the lost data); one output sooner may have been decoded before it.
_DPB_FRAMES = 16
# the program's lines, with ``-loglevel level+info``: "[ctx @ 0x…] [level] text" (ctx absent for its own)
# (a blank line, "[ctx @ 0x…] [info]" once its trailing space is stripped, has no text: showinfo writes them)
_LINE = re.compile(r"^(?:\[[^\]]*\] )?\[(?P<level>[a-z]+)\](?: (?P<text>.*))?$")
# showinfo's line for each frame it passes ("n:   7 pts: … iskey:0 type:B …", FFmpeg 4 to 7); a build that
# wrote no key flag would end no concealment: frames counted, never a made-up one inspected
_FRAME = re.compile(r"^n: *\d+ ")
_KEY = re.compile(r"\biskey:1\b")
# … and the frame's own size and the decoder's pixel format ("fmt:yuv420p … s:128x96", measured FFmpeg 5.1),
# which frame its bytes in the pipe (-autoscale 0: each frame leaves the program at its own size, live_command)
_SIZE = re.compile(r"\bs:(\d+)x(\d+)\b")
_TIME = re.compile(r"\bpts_time:(-?[0-9.]+)")  # its time (s, from the start): OpenCV's CAP_PROP_POS_MSEC / 1000
_FORMAT = re.compile(r"\bfmt:([0-9a-z_]+)")
# trace_headers' lines of an MPEG-2 stream's extensions (mpeg2_trace): a sequence_extension's chroma_format
# ("21   chroma_format   10 = 2", FFmpeg 5.1) and, after it, its low_delay ("48   low_delay   0 = 0"), and the
# picture_coding_extension each picture has
_CHROMA = re.compile(r"\bchroma_format\s+[01]+ = (\d)\b")
_LOW_DELAY = re.compile(r"\blow_delay\s+[01] = ([01])\b")
_PICTURE_EXTENSION = re.compile(r"\bextension_start_code_identifier\s+1000 = 8\b")
# warnings that say data was lost before the decoder (demuxer / RTP): a decoder's own losses are errors
_LOSS_WARNING = re.compile(r"corrupt|missed \d+ packets|max delay reached", re.IGNORECASE)
# the context of a line ("[mpeg2video @ 0x…]": the component's name), "" for the program's own lines
_CONTEXT = re.compile(r"^\[(?P<name>[^\]@]*?)(?: @ 0x[0-9a-f]+)?\] \[")
# components on the output side of live_command / file_command / MPEG2_TRACE: the rawvideo encoder and muxer,
# the null muxer, their bitstream filters, the filter graph (showinfo, format, scaling) and swscale. What they
# complain of is our output's bookkeeping, never data the decoder lacked: MPEG-2 with B-frames decoded in decode
# order (-flags low_delay) made the rawvideo muxer log "non monotonically increasing dts" errors, and 24 of 30
# frames were counted concealed (measured, FFmpeg 5.1). A live raw (rawvideo) input is intra-only: a loss
# there fails its one frame, which is then not output, so none is missed by ignoring that name too.
_OUTPUT_SIDE = re.compile(r"^(?:rawvideo|null|trace_headers|filter_units|swscaler|format|Parsed_\w+|graph .*"
                          r"|auto_scale_\d+|(?:in|out)_\d+_\d+)$")
# timestamp complaints (a camera's clock stepping back, a wrap): the pictures' data is whole
_TIMESTAMP = re.compile(r"\b(?:dts|pts|timestamps?)\b|monoton", re.IGNORECASE)
# the demuxer's warning of a packet flagged corrupt (FFmpeg's demux.c), and the program's own line after it
_PACKET_CORRUPT = re.compile(r"^Packet corrupt \(stream = \d+, dts = (-?\d+)\)")
_CORRUPT_INPUT = re.compile(r": corrupt input packet in stream \d+$")


def _fourccs(*texts: bytes) -> frozenset[int]:
    return frozenset(int.from_bytes(text, "little") for text in texts)


# Codecs whose every frame is coded alone (FFmpeg's AV_CODEC_PROP_INTRA_ONLY, by the FOURCC OpenCV reports):
# a loss spoils one picture, which then fails to decode, and no later frame is predicted from a made-up one.
# Every other live stream (H.264, HEVC, MPEG-4, VP8/9, AV1, unknown: FOURCC 0) predicts frames from earlier
# ones, and its decoder conceals a lost reference with made-up pictures OpenCV hands on unmarked: such a stream
# is read by the program, whose log tells them (Concealment), whenever the program is installed.
INTRA_ONLY_CODECS = pf.STILL_PICTURE_CODECS | _fourccs(
    b"MJPG", b"mjpg", b"jpeg", b"LJPG", b"JPGL", b"MJLS", b"FFV1", b"HFYU", b"FFVH", b"ULRG", b"ULRA", b"ULY0",
    b"ULY2", b"ULY4", b"ULH0", b"ULH2", b"ULH4", b"apcn", b"apch", b"apcs", b"apco", b"ap4h", b"ap4x", b"AVdn",
    b"AVdh", b"dvsd", b"dv25", b"dv50", b"dvhd", b"MJ2C", b"j2k ", b"QOI ", b"RAW ", b"raw ", b"I420", b"IYUV",
    b"YV12", b"NV12", b"YUY2", b"UYVY", b"Y800", b"GREY", b"Y8  ", b"BGR\x18", b"RGB\x18", b"RGBA", b"BGRA",
    b"v210", b"r210", b"b16g", b"b48r", b"Y16 ")


MPEG2_CODECS = _fourccs(b"mpg2", b"MPG2")  # MPEG-2 video, by the FOURCC OpenCV reports (ChromaWatch)


def available() -> bool:
    """Whether the ``ffmpeg`` program is on PATH."""
    return shutil.which("ffmpeg") is not None


LISTING = "pipe:LISTING"  # in a command: where the program reads the URL's listing (:func:`_start_listed`)


def _ffconcat_quoted(text: str) -> str:
    """``text`` as one ffconcat token: in single quotes, a quote written '\\'' (av_get_token's rule)."""
    return "'" + text.replace("'", "'\\''") + "'"


# RTP packets the program's RTSP demuxer holds while one is missing (FFmpeg's reorder_queue_size; url_listing): the
# smallest that tells a gap (at most 1 is no queue), so a skipped sequence number is said after two more packets
RTSP_QUEUE = 2


def url_listing(url: str, analyze_s: float) -> bytes:
    """The ffconcat list naming the live ``url`` alone, with its input options (``option``, FFmpeg ≥ 5.0).

    The URL goes to the program through a pipe, never its command line: a password on the command line is
    read by every local user (``ps``, /proc/PID/cmdline). ``analyzeduration`` (``analyze_s``): a probe as
    short as OpenCV's (``CvSource._ffmpeg_options``); RTSP over TCP, as there, with a reordering queue of
    :data:`RTSP_QUEUE` packets: over TCP FFmpeg's RTP demuxer otherwise takes every packet as it comes and says
    nothing of a skipped sequence number (a camera that dropped RTP packets from its full send buffer, a proxy),
    and the H.264 decoder conceals the lost frame silently (its "Frame num gap" is a debug line): the frames up to
    the next key frame, predicted from the wrong picture, were inspected as whole (measured, FFmpeg 5.1, one RTP
    packet of a 25 fps H.264 camera dropped: 0 of 104 frames told). With the queue a gap is "RTP: missed N
    packets" (a loss: :class:`Concealment`); packets in order pass it at once, so it delays nothing but the
    packets after a gap, two at most. A join is no gap (the first packet sets the sequence)."""
    if any(c in url for c in "\r\n\0"):
        raise OSError("the camera URL holds a line break or NUL")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    options = [("analyzeduration", str(max(1, int(analyze_s * 1e6))))]
    if scheme in ("rtsp", "rtsps"):
        options += [("rtsp_transport", "tcp"), ("reorder_queue_size", str(RTSP_QUEUE))]
    lines = ["ffconcat version 1.0", f"file {_ffconcat_quoted(url)}",
             *(f"option {key} {_ffconcat_quoted(value)}" for key, value in options)]
    return ("\n".join(lines) + "\n").encode()


# the program's start: every line tagged with its level (Concealment.parse), no progress lines
PROGRAM = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info"]
# The decoder of every program whose log judges frames (live_command, file_command, file_verdicts) runs on one thread.
# FFmpeg 5.1's H.264 decoder marks a concealed frame only through its error-resilience pass ("corrupt decoded
# frame", its own errors), which slice threading turns off and frame threading races. A byte flipped inside a slice,
# no packet lost (a live 320x240 stream, one byte of the third TS packet of every third frame's slice flipped in
# turn): 15 of the 16 flips that changed pixels were counted with one thread, 10 with slice threading; the 16th
# decodes as valid syntax (H.264 carries no checksum): nothing can tell it. -err_detect careful / compliant /
# aggressive told none more. One thread costs no CPU (the same work: 1080p H.264, 75 frames, 0.45-0.6 s user time
# either way, one slice or four) but caps one stream's decoding at one core (~150 frames/s of 1080p at 5 Mbit/s on
# the 2-core test machine); frame threading also held back a frame per thread.
ONE_THREAD = ["-threads", "1"]


# The probe of a stream fed on stdin (relayed: live_command's ``fed``), in µs of stream time: the least (0 is FFmpeg's
# default, 5 s). The MPEG-TS demuxer may add streams at any packet (AVFMTCTX_NOHEADER), so FFmpeg's probe of a TS never
# ends on having found every stream's parameters ("All info found"): only its limits end it, and no frame leaves the
# program before. With open_timeout_s / 10 (1 s by default) every relayed stream (tcp, udp, http(s), srt, rtp …)
# opened 1 s of stream later and its first ~25 frames came from that 1 s backlog ("max_analyze_duration 1000000
# reached", then a burst: the first frame 1.0 s older than the steady state's, measured at 640x480, FFmpeg 5.1). The
# probe needs nothing of the pipe but the streams' list, parsed from the PMT before any packet it counts: the
# decoder takes the parameters in band (SPS / VPS, sequence headers) and the program sizes its output by the first
# decoded frame. ``probesize`` stays FFmpeg's 5 MB: a byte limit could end the probe before a sender's sparse PMT.
# The probe now ends on the fourth packet out of the demuxer and parser (tests/pipeline/test_live_probe_backlog.py).
# A URL the program opens itself (its listing, not fed) is read through the concat demuxer, whose probe ends once
# its parameters are found: no backlog there (measured the same way: its first frame 0.00-0.23 s older).
FED_ANALYZE_US = 1


def live_command(grey: bool, analyze_s: float, eight_bit: bool = False, mpeg2: bool = False,
                 fed: bool = False) -> list[str]:
    """The ``ffmpeg`` command decoding the live URL listed in a pipe (:func:`url_listing`, :data:`LISTING`)
    into raw ``gray16le`` / ``bgr48le`` frames on stdout; ``eight_bit``: ``bgr24`` (an 8-bit stream, OpenCV's
    own BGR: :data:`INTRA_ONLY_CODECS`' reason).

    ``-f concat -safe 0``: the listing names a URL; ``-protocol_whitelist``: the nested open inherits the
    pipe's (only 'crypto,data'), so every scheme a camera may use (:data:`config._URL_SCHEMES`).
    ``-threads 1`` (:data:`ONE_THREAD`): the decoder's error-resilience pass marks the frames it concealed, and no
    frame threading (libavcodec pthread.c), which holds back a frame per thread;
    not ``-flags low_delay``, which also made the MPEG-2 decoder output a stream with B-frames in decode order
    (each P before the B-frames shown before it: frames out of order, and the muxer's timestamp errors counted
    24 of 30 frames concealed; measured, FFmpeg 5.1): frames leave in display order, a B-frame stream's one
    frame of reordering delay being the stream's own;
    ``-analyzeduration``: the listing's probe already ran, this one of the concat demuxer reads as little. Not
    ``-fflags nobuffer``: it drops the packets the probe read, the first key frame among them, and a 10-bit
    HEVC stream then gave flat grey frames (measured, FFmpeg 5.1: "Could not find ref"). ``-autoscale 0``
    (FFmpeg ≥ 4.4), no ``-s``: each frame leaves the program at the size it was decoded at. By default the
    program scales every frame to its first's (or ``-s``'s) size: a camera reconfigured from 64x48 to 128x96
    mid-stream gave 64x48 frames, the change unseen (measured, FFmpeg 5.1; a build whose encoder refused the
    new size would end the stream, which is then reopened at that size and the change said: never unseen).
    ``-loglevel level+info`` and ``showinfo`` (no checksums: they cost a pass over the pixels): each line tagged
    with its level, and a line per frame, written before the frame's bytes, with its key flag
    (:class:`Concealment`), its size, which frames its bytes in the pipe, and the decoder's pixel format
    (:class:`LiveFrames`). ``mpeg2``: the stream's MPEG-2 extensions traced too (:data:`MPEG2_TRACE`). ``fed``: the
    stream's bytes come on stdin instead, relayed (:func:`relay_command`, :class:`ts_feed.StreamFeed`), its format
    probed there, for :data:`FED_ANALYZE_US` of stream time whatever ``analyze_s``."""
    source = ["-analyzeduration", str(FED_ANALYZE_US), "-i", "pipe:0"] if fed else \
        ["-analyzeduration", str(max(1, int(analyze_s * 1e6))), "-protocol_whitelist", ",".join(sorted(_URL_SCHEMES)),
         "-f", "concat", "-safe", "0", "-i", LISTING]
    return [*PROGRAM, *ONE_THREAD, *source,
            *_framed_output("bgr24" if eight_bit else "gray16le" if grey else "bgr48le"),
            *(MPEG2_TRACE if mpeg2 else [])]


# Live transports that may carry an MPEG-TS as it was sent, byte for byte (FFmpeg's protocols of those names, read by
# the data demuxer): such a stream is relayed (relay_command), so that its joins are told from losses by one rule
# (ts_feed.TsJoins) whichever carries it. rtp: RTP packets of payload type 33, unwrapped and their sequence numbers
# checked (ts_feed.RtpUnwrap). Not rtsp (its RTP comes in a session the relay would have to hold), hls (a playlist of
# segments its demuxer joins itself), rtmp / mms (FLV / ASF, no TS).
RELAYED_SCHEMES = frozenset({"tcp", "udp", "udplite", "http", "https", "srt", "rist", "tls", "unix", "sctp", "rtp"})
RTP_SCHEMES = frozenset({"rtp"})
# … of which a stream that is no MPEG-TS is read by the decoding program itself, not through the relay: over http(s) a
# recording the program must seek in (an MP4 whose index is at its end cannot be read from a pipe), over rtp another
# payload the program's RTP demuxer unpacks. Any other is handed on as it is (one connection: a camera may serve one
# client at a time).
DIRECT_UNLESS_TS = frozenset({"http", "https", "rtp"})


# … of which an http(s) stream is relayed by inspector.pipeline.http_relay, its URL on the relay's stdin, whatever the URL
# holds: an http(s) URL's path and parameters are the camera's own (a token in the path, a signed URL's sig=, auth=),
# and none can be told harmless by its name
OWN_RELAY_SCHEMES = frozenset({"http", "https"})
# The parameters of the other relayed transports that may stand on the ffmpeg relay's command line, which every local
# user reads (``ps``, /proc/PID/cmdline): FFmpeg's own options of those protocols that are no secret. A URL with a user
# part or any other parameter is read by the decoding program itself, its URL in a pipe (url_listing): a deny-list of
# secret names (redact's) let srt://…?streamid=#!::u=op,t=<token> and any name it did not know onto the command line.
COMMAND_LINE_OPTIONS = TRANSPORT_OPTIONS  # FFmpeg's options of those transports that are no secret (one list)


def _fits_command_line(parts: urllib.parse.SplitResult) -> bool:
    """Whether a URL may stand on a child's command line: no user part, no path (these transports read none; a unix://
    one's is its socket's file name), and only :data:`COMMAND_LINE_OPTIONS`."""
    names = [name for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    bare = [item for item in parts.query.split("&") if item and "=" not in item]
    return "@" not in parts.netloc and not parts.fragment and not bare and \
        (parts.path in ("", "/") or parts.scheme.lower() == "unix") and \
        all(name.lower() in COMMAND_LINE_OPTIONS for name in names)


def relayed(url: str) -> bool:
    """Whether the live ``url`` is read through a relay: an http(s) one by :mod:`inspector.pipeline.http_relay` (the
    URL on its stdin), any other :data:`RELAYED_SCHEMES` URL by the ffmpeg program (:func:`relay_command`, the URL on
    its command line) when it holds nothing but what may stand there (:func:`_fits_command_line`); none with a line
    break; an srt:// one holding more (a ``passphrase``, a ``streamid``) by :mod:`inspector.pipeline.srt_relay` (the
    URL on its stdin) where it can (:func:`srt_relay.can_relay`). Any other (a user part, an option that relay does not
    set, no libsrt) is read by the decoding program itself, its URL in a pipe: its joins are still counted as losses."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    return (scheme in RELAYED_SCHEMES and not any(c in url for c in "\r\n\0")
            and (scheme in OWN_RELAY_SCHEMES or _fits_command_line(parts) or srt_relay.can_relay(url)))


def relay_argv(url: str, timeout_s: float) -> list[str]:
    """The command line of the relay of a :func:`relayed` ``url``: :mod:`inspector.pipeline.http_relay`'s for http(s),
    :mod:`inspector.pipeline.srt_relay`'s for a URL that may not stand on a command line (both read it from stdin), else
    the ffmpeg program's (:func:`relay_command`, the URL on it)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() in OWN_RELAY_SCHEMES:
        return http_relay.command(timeout_s)
    if not _fits_command_line(parts):  # an srt:// URL with a passphrase or a stream id (relayed)
        return srt_relay.command(timeout_s)
    return relay_command(url)


def _start_relay(url: str, timeout_s: float) -> subprocess.Popen:
    """The relay of a :func:`relayed` ``url``: its stream's bytes as sent on stdout. Raises OSError."""
    cmd = relay_argv(url, timeout_s)
    if url in cmd:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return programs.start_told(cmd, url)


def relay_command(url: str) -> list[str]:
    """The ``ffmpeg`` command handing the bytes of the live ``url`` on to stdout as they come (the ``data`` demuxer and
    muxer: no demuxing, each read written at once), for :class:`ts_feed.StreamFeed`. The decoding program could
    not tell the segments an MPEG-TS sender plays one after another from lost packets: its demuxer flags the packet
    before a restarted continuity count "corrupt" (logging the break itself only at debug level, never whether it
    fell on a random access point), and the key-frame interval after every such join was counted concealed (29 of
    100 frames of two 50-frame segments over tcp://). Relayed, the bytes are scanned here, as a file's are
    (:class:`ts_feed.TsJoins`). The URL is on the relay's command line: :func:`relayed` URLs other than http(s) only,
    none holding more than :data:`COMMAND_LINE_OPTIONS`. An rtp:// URL's
    bytes are its RTP packets whole, headers and all (:class:`ts_feed.RtpUnwrap`)."""
    return [*PROGRAM, "-f", "data", "-i", url, "-map", "0", "-c", "copy", "-flush_packets", "1", "-f", "data",
            "pipe:1"]


# A second output of the program for an MPEG-2 stream: its packets copied (nothing decoded) through
# filter_units, keeping the extensions (start code B5), and trace_headers, which logs their fields at info
# level after the line of the frame the decoder output on the same packet (ChromaWatch); the null muxer writes
# nothing to stdout.
MPEG2_TRACE = ["-map", "0:v:0", "-c", "copy", "-bsf:v", "filter_units=pass_types=0xb5,trace_headers", "-f", "null",
               "-"]


def _framed_output(pix_fmt: str) -> list[str]:
    """The output half of :func:`live_command` and :func:`file_command`: raw ``pix_fmt`` frames on stdout, each
    at the size it was decoded at (``-autoscale 0``) and announced by its showinfo line; one per decoded frame
    (``-vsync passthrough``: none duplicated or dropped, as OpenCV reads them)."""
    return ["-map", "0:v:0", "-vf", "showinfo=checksum=0", "-vsync", "passthrough", "-f", "rawvideo",
            "-pix_fmt", pix_fmt, "-autoscale", "0", "pipe:1"]


def file_command(path: str, pix_fmt: str, fed: bool = False, follow: bool = False, ts: bool = True) -> list[str]:
    """The ``ffmpeg`` command decoding the video *file* ``path`` as :func:`live_command` decodes a live URL: each
    frame at its own size, framed by its showinfo line (:class:`LiveFrames`). ``file:``: a name holding a colon
    (``rtsp:x.ts``) is the file, not a protocol. The decoder runs on one thread (:data:`ONE_THREAD`), for its verdicts:
    FFmpeg 5.1's H.264 decoder marks a concealed frame only through its error-resilience pass, which slice threading
    turns off and frame threading races (a damaged key frame went unmarked in 3 of 6 runs of a reader that never
    made the program wait; through this reader the frames counted concealed varied from run to run, 28 or 29):
    a frame made up unsaid would be inspected as a part. One thread decodes the file exactly the same way each time.
    ``fed``: the file given on stdin (:class:`ts_feed.FileFeed`), an MPEG-TS unless ``ts`` is False (its format then
    probed); ``follow``: one still being written, whose
    probe reads as little as a live URL's (FFmpeg's default waits for 5 MB or 5 s of stream: the first frame of a
    recording being written came only once it had grown that much, or ended)."""
    probe = ["-probesize", str(_FOLLOW_PROBE_BYTES), "-analyzeduration", str(_FOLLOW_ANALYZE_US)] if follow else []
    source = [*probe, *(["-f", "mpegts"] if ts else []), "-i", "pipe:0"] if fed else \
        ["-i", f"file:{os.path.abspath(path)}"]
    return [*PROGRAM, *ONE_THREAD, *source, *_framed_output(pix_fmt)]


def sized_decoder(grey: bool, bits: int, where: str, bit_depth: int | None, warn_key: str) -> ffmpeg_frames.Decoder:
    """The function making a wide frame of the program's output model input at whatever size it came:
    uint8 (H, W, 2 or 6) bytes (``gray16le`` when ``grey``, else ``bgr48le``) → uint8 (H, W, 3) BGR, by the
    recordings' rule (:func:`ffmpeg_frames.full_depth_decoder`, one per size met). Raises ImageRejected."""
    decoders: dict[tuple[int, int], ffmpeg_frames.Decoder] = {}

    def decode(raw: np.ndarray) -> np.ndarray:
        height, width = raw.shape[:2]
        if (width, height) not in decoders:
            decoders[(width, height)] = ffmpeg_frames.full_depth_decoder(grey, bits, width, height, where,
                                                                         bit_depth, warn_key)
        return decoders[(width, height)](raw.reshape(1, -1))

    return decode


def _start_listed(cmd: list[str], listing: bytes, fed: bool = False) -> subprocess.Popen:
    """Start ``cmd`` with ``listing`` to read from a pipe (the URL on no disk, nor command line): its
    :data:`LISTING` argument becomes ``pipe:<descriptor>``. The listing (< 64 KiB, a pipe's buffer) is written
    whole and the pipe closed before the program starts, so it reads the listing and then its end. ``fed``: its
    stdin a pipe (a file's bytes, :class:`ts_feed.FileFeed`)."""
    if len(listing) >= 1 << 16:
        raise OSError("the camera URL is too long to hand to the ffmpeg program")
    read, write = os.pipe()
    try:
        os.write(write, listing)
        os.close(write)
        cmd = [f"pipe:{read}" if arg == LISTING else arg for arg in cmd]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE if fed else subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0, pass_fds=(read,))
    finally:
        os.close(read)


CONCEALED = "concealed"  # a frame resting on data the decoder never had (Concealment)
BEFORE_KEY_FRAME = "before_key_frame"  # a frame output before the first key frame since the program started


class Concealment:
    """Which of the program's output frames rest on data its decoder never had (a packet lost, a reference
    frame lost), told from the program's log lines in the order it wrote them; and which came before the first
    key frame since the program connected (a (re)connect joins a live stream between key frames).

    FFmpeg's decoders conceal a loss: they output the frames anyway, predicted from a grey "missing reference"
    (measured, FFmpeg 5.1, 10-bit HEVC with B-frames, a key frame's TS packets lost: the 26 frames up to the
    next key frame 65 to 174 levels off in 8 bits). No option stops them (``-flags -output_corrupt``,
    ``-err_detect explode``, ``-fflags +discardcorrupt``, ``-ec 0``: measured), nor are the frames marked (no
    "corrupt decoded frame" line for them). But the demuxer or decoder logs the loss as it meets it ("Packet
    corrupt", "Could not find ref with POC 25"), before any frame resting on it is output, and showinfo logs
    each frame as it passes, key frames marked. Rule: from a loss on, every frame is concealed until a key
    frame decoded after the loss: one output at least :data:`_DPB_FRAMES` frames after it. A key frame output
    sooner may have been decoded before the loss, and the frames after it lean on the lost data: the next one
    is waited for.

    A join is no loss: the program connects (at open, at every reconnect) between two key frames, and the
    decoder complains of the packets before the first ("non-existing PPS 0 referenced", "PPS id out of range")
    and may output pictures made up from nothing (10-bit HEVC: 12). Those frames are :data:`BEFORE_KEY_FRAME`,
    not concealed: never inspected, and not evidence of a lossy link. Nothing was decoded before the program
    started, so the first key frame output is decoded after every complaint of the join and ends them; taken as
    a loss, it was output fewer than :data:`_DPB_FRAMES` frames after them and its whole key-frame interval was
    counted concealed at every reconnect (measured: 25 frames of a 25-frame GOP, docs/PERFORMANCE.md). A real
    loss logged before that first key frame is output (within its reordering delay, at most
    :data:`_DPB_FRAMES` frames) cannot be told from the join's complaints and is taken for them."""

    def __init__(self, joins: collections.Counter[int] | None = None) -> None:
        self.frames = 0  # frames output so far
        self.loss_at: int | None = None  # the frame count at the latest loss not yet recovered from
        self.keyed = False  # whether a key frame was output since the program started
        # an MPEG-TS's joins of segments put together byte for byte (ts_feed.TsJoins.dts, filled as the file or
        # stream is fed: decode time → joins after a PES of that time): the demuxer's "Packet corrupt" for the
        # whole packet before a join is no loss, once a join
        self.joins = joins
        # per such warning not yet followed by the program's own line for its packet, whether it was a join's
        self._corrupt_said: collections.deque[bool] = collections.deque()

    @staticmethod
    def parse(line: str) -> tuple[str, str]:
        """(level, text) of one of the program's lines; level "" for a line without its level tag."""
        match = _LINE.match(line)
        return (match["level"], match["text"] or "") if match else ("", line)

    @staticmethod
    def context(line: str) -> str:
        """The component that wrote one of the program's lines ("mpegts", "h264", "rawvideo" …); "" for the
        program's own lines."""
        match = _CONTEXT.match(line)
        return match["name"] if match else ""

    @staticmethod
    def is_loss(level: str, text: str, context: str = "") -> bool:
        """Whether a line that is no frame's says data was lost before or in the decoder: a demuxer's or RTP's
        loss warning (:data:`_LOSS_WARNING`, "Packet corrupt (stream = 0, dts = …)" among them), or an error of
        the input side (demuxer, protocol, decoder, the program's "Error while decoding stream") that is no
        timestamp complaint. Never a line of the output side (:data:`_OUTPUT_SIDE`): ours, not the stream's."""
        if _OUTPUT_SIDE.match(context):
            return False
        if _LOSS_WARNING.search(text):
            return level in ("warning", "error", "fatal", "panic")
        return level in ("error", "fatal", "panic") and not _TIMESTAMP.search(text)

    def frame_verdict(self, level: str, text: str, context: str = "") -> str | None:
        """Take one log line (``context``: its component, :meth:`parse`): for a frame's line, "" for a frame
        decoded whole, else why it is not inspected (:data:`CONCEALED`, :data:`BEFORE_KEY_FRAME`); None for any
        other line (a loss among them, :meth:`is_loss`, is noted)."""
        if level == "info" and _FRAME.match(text):
            if _KEY.search(text) and not self.keyed:
                self.keyed, self.loss_at = True, None  # the complaints so far were the join's (class docstring)
            elif _KEY.search(text) and self.loss_at is not None and self.frames - self.loss_at >= _DPB_FRAMES:
                self.loss_at = None
            self.frames += 1
            return BEFORE_KEY_FRAME if not self.keyed else CONCEALED if self.loss_at is not None else ""
        if self.is_loss(level, text, context) and not self._at_join(text):
            self.loss_at = self.frames
        return None

    def _at_join(self, text: str) -> bool:
        """Whether a loss line is the demuxer's warning for the packet before a join of segments (``joins``), or
        the program's own line for that packet ("corrupt input packet"). The two come in the same order, packet by
        packet, but not always one after the other: the probe at a (re)join reads ahead, so the demuxer's warning for
        a join within it came first and the program's line for the packet ~20 frames later, after the join's
        complaints (a live udp:// stream of 50-frame segments: the interval after that join counted concealed)."""
        if self.joins is None:
            return False
        if corrupt := _PACKET_CORRUPT.match(text):  # each join excuses one warning (ts_feed.TsJoins.dts)
            excused = self.joins.get(int(corrupt[1]), 0) > 0
            if excused:
                self.joins[int(corrupt[1])] -= 1
            self._corrupt_said.append(excused)
            return excused
        return bool(_CORRUPT_INPUT.search(text)) and bool(self._corrupt_said) and self._corrupt_said.popleft()


class FrameLine(NamedTuple):
    """What the program's showinfo line says of one output frame: why it is not to be inspected ("" for none:
    :meth:`Concealment.frame_verdict`), its size (pixels) and the decoder's pixel format (FFmpeg's name; None when
    the line names none)."""

    verdict: str
    width: int
    height: int
    pixel_format: str | None
    time_s: float | None = None  # the frame's time from the stream's start (s); None: not named


CHROMA_UNFOLLOWED = "chroma_unfollowed"  # an MPEG-2 frame decoded with a chroma format its stream left (ChromaWatch)


class ChromaWatch:
    """Which of an MPEG-2 stream's frames the program's decoder made with a chroma format the stream no longer
    has, told from the program's trace of the stream's extensions (:data:`MPEG2_TRACE`).

    FFmpeg's MPEG-2 decoder takes the chroma format of a sequence only when the frame size changes: a camera
    switched from 4:2:0 to 4:2:2 at the same size had its later frames decoded as 4:2:0, 214 levels off, and
    named yuv420p (measured, FFmpeg 5.1). Each packet's trace comes after the line of the frame the decoder output
    on it, and ends with its picture_coding_extension: a frame's line is handed on (settled) at that extension,
    or at the next frame's line, so a change is marked before the frame it spoils is read. Which frame that is
    depends on the sequence's ``low_delay`` (traced after its chroma_format): set, each picture is output on
    its own packet, so the line held is the new sequence's first frame; clear (the decoder reorders: B-frames),
    an I- or P-picture is output on a later packet and the line held is an earlier picture's, decoded before the
    change: the next frame's line is the new sequence's. At a new size the decoder took the new chroma format;
    at the same size that frame and every later one are :data:`CHROMA_UNFOLLOWED` (the stream is then reopened:
    a new decoder takes it)."""

    def __init__(self) -> None:
        self.chroma: int | None = None  # the chroma_format the decoder decodes with
        self.traced: int | None = None  # the chroma_format of the sequence being traced (until its low_delay)
        self.awaited: int | None = None  # a chroma_format changed whose first frame's line is still to come
        self.size: tuple[int, int] | None = None  # the last frame's size
        self.resized = False  # whether the held frame came at a new size (its decoder took the new sequence)
        self.unfollowed = False
        self.held: FrameLine | None = None

    def frame(self, line: FrameLine) -> list[FrameLine]:
        """A frame's line: held until settled; the lines settled by it (the one held before)."""
        settled, self.held = self._release(), line
        self.resized = self.size is not None and (line.width, line.height) != self.size
        self.size = (line.width, line.height)
        if self.awaited is not None:  # this is the changed sequence's first frame (a reordering decoder)
            self.chroma, self.unfollowed = self.awaited, self.unfollowed or not self.resized
            self.awaited = None
        if self.unfollowed:
            self.held = line._replace(verdict=CHROMA_UNFOLLOWED)
        return settled

    def trace(self, text: str) -> list[FrameLine] | None:
        """One of the program's info lines: the lines it settles; None for a line that is no trace of it."""
        if chroma := _CHROMA.search(text):
            self.traced = int(chroma[1])
            return []
        if (low_delay := _LOW_DELAY.search(text)) and self.traced is not None:
            self._sequence(self.traced, low_delay[1] == "1")
            self.traced = None
            return []
        return self._release() if _PICTURE_EXTENSION.search(text) else None

    def _sequence(self, chroma: int, low_delay: bool) -> None:
        """A sequence extension traced: its ``chroma`` format, and whether its pictures are output on their own
        packets (``low_delay``: the line held is its first frame's) or later (the next frame's line is)."""
        if self.chroma is None or (low_delay and self.resized):  # the decoder (re)started with this sequence
            self.chroma = chroma
        elif chroma != self.chroma and low_delay:
            self.unfollowed = True
            self.held = self.held and self.held._replace(verdict=CHROMA_UNFOLLOWED)
        elif chroma != self.chroma:
            self.awaited = chroma

    def end(self) -> list[FrameLine]:
        """The program ended: the line held is settled (its frame's bytes, if any came, are whole)."""
        return self._release()

    def _release(self) -> list[FrameLine]:
        settled, self.held = [self.held] if self.held else [], None
        return settled


class LiveFrames:
    """A running ``ffmpeg`` whose raw frames (``pixel_bytes`` a pixel) are read on a thread as fast as it writes
    them; only the newest is kept (``keep_all``: each waits to be taken), stamped when its last byte arrived.
    Each frame is read by its showinfo line (:class:`FrameLine`: :func:`live_command` makes them), which the
    program writes before the frame's bytes: its size frames its bytes in the pipe (a mid-stream size change
    comes at its own size), its verdict marks it concealed. ``size``: (width, height) expected first, for a
    line that names none. Raises OSError when the program cannot start."""

    def __init__(self, cmd: list[str], pixel_bytes: int, size: tuple[int, int], keep_all: bool,
                 listing: bytes = b"", feed: ts_feed.FileFeed | ts_feed.StreamFeed | None = None) -> None:
        self.pixel_bytes, self._size, self._keep_all, self._feed = pixel_bytes, size, keep_all, feed
        self._watch = ChromaWatch() if cmd[-len(MPEG2_TRACE):] == MPEG2_TRACE else None
        self._proc = _start_listed(cmd, listing, fed=feed is not None)
        self._cond = threading.Condition()
        self._newest: tuple[bytearray, FrameLine, int, float] | None = None
        self._lines: collections.deque[FrameLine] = collections.deque()  # of frames whose bytes are not yet read
        self._stderr_ended = False
        self._replaced = 0  # frames that arrived and were replaced before they were taken
        self._ended: str | None = None  # why the program gave no more frames
        self._closed = False
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._threads = [threading.Thread(target=self._drain_stderr, name="ffmpeg-stderr", daemon=True),
                         threading.Thread(target=self._run, name="ffmpeg-reader", daemon=True)]
        if feed is not None:  # the file's bytes into the program's stdin (ts_feed.FileFeed)
            self._threads.append(threading.Thread(target=feed.run, args=(self._proc.stdin,), name="ffmpeg-feed",
                                                  daemon=True))
        for thread in self._threads:
            thread.start()

    def _frame_line(self, verdict: str, text: str) -> FrameLine:
        """A frame's showinfo ``text`` → :class:`FrameLine`; a line naming no size keeps the last one."""
        size, fmt = _SIZE.search(text), _FORMAT.search(text)
        if size:
            self._size = (int(size[1]), int(size[2]))
        time_s = _TIME.search(text)
        return FrameLine(verdict, *self._size, fmt[1] if fmt else None, float(time_s[1]) if time_s else None)

    def _drain_stderr(self) -> None:
        """Read the program's stderr to its end (a full pipe would stall it): each frame's line, and the last
        lines of warning or worse written since the last frame: the reason a stream ended (one written before
        a frame that came after it, a concealed loss or the start's "-vsync is deprecated", is not)."""
        concealment, watch = Concealment(self._feed.joins.dts if self._feed else None), self._watch
        try:
            for raw in self._proc.stderr:
                line = raw.decode("utf-8", "replace").strip()
                level, text = Concealment.parse(line)
                verdict = concealment.frame_verdict(level, text, Concealment.context(line))
                if verdict is not None:
                    line = self._frame_line(verdict, text)
                    self._settle(watch.frame(line) if watch else [line])
                    self._stderr.clear()
                elif watch and level == "info" and (settled := watch.trace(text)) is not None:
                    self._settle(settled)
                elif level not in ("info", "verbose", "debug", "trace"):
                    self._stderr.append(text)
        except (OSError, ValueError):  # closed under it
            pass
        self._settle(watch.end() if watch else [])
        with self._cond:
            self._stderr_ended = True
            self._cond.notify_all()

    def _settle(self, lines: list[FrameLine]) -> None:
        """Frames' lines, in order, whose bytes the reader may now take (:class:`ChromaWatch`)."""
        if lines:
            with self._cond:
                self._lines.extend(lines)
                self._cond.notify_all()

    def _next_line(self) -> FrameLine:
        """The line of the next frame in the pipe, waited for (written before its bytes, it may be read after
        them). No line (the program ended): the last size, not vouched for: concealed."""
        with self._cond:
            self._cond.wait_for(lambda: self._lines or self._stderr_ended or self._closed)
            return self._lines.popleft() if self._lines else FrameLine(CONCEALED, *self._size, None)

    def _read_frame(self, frame_bytes: int) -> bytearray | None:
        buf, got = bytearray(frame_bytes), 0
        view = memoryview(buf)
        while got < frame_bytes:
            n = self._proc.stdout.readinto(view[got:])
            if not n:
                return None  # the end (a last partial frame is not a frame)
            got += n
        return buf

    def _run(self) -> None:
        try:
            while True:
                line = self._next_line()
                if (buf := self._read_frame(line.width * line.height * self.pixel_bytes)) is None:
                    break
                t_ns, t_utc = stamp_now()  # the frame is whole in memory: its arrival
                with self._cond:
                    if self._keep_all:
                        self._cond.wait_for(lambda: self._newest is None or self._closed)
                    self._replaced += self._newest is not None
                    self._newest = (buf, line, t_ns, t_utc)
                    self._cond.notify_all()
        except (OSError, ValueError):  # the pipe closed under it (close)
            pass
        code = self._proc.wait()
        self._threads[0].join(programs.JOIN_S)  # its last words, for the reason
        last = next((line for line in reversed(self._stderr) if line), "")
        relay = self._feed.why() if isinstance(self._feed, ts_feed.StreamFeed) else ""
        last = relay or last  # a relayed stream: the relay met the stream's end, the program only its input's
        with self._cond:
            self._ended = f"the stream ended ({redact(last) if last else f'the ffmpeg program exited with code {code}'})"
            self._cond.notify_all()

    def wait_first(self, timeout_s: float) -> None:
        """Return once a frame is there (kept for :meth:`take`); EOFError with the reason when none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._newest is not None or self._ended, timeout_s):
                raise EOFError(f"no frame within {timeout_s:g} s")
            if self._newest is None:
                raise EOFError(self._ended)

    def take(self, timeout_s: float) -> tuple[bytearray, FrameLine, int, float, int]:
        """(frame bytes, its :class:`FrameLine`, arrival monotonic ns, arrival UTC s, frames replaced since the
        last take); EOFError with the reason when the program ended or gave nothing within ``timeout_s``."""
        self.wait_first(timeout_s)
        with self._cond:
            (buf, line, t_ns, t_utc), replaced = self._newest, self._replaced
            self._newest, self._replaced = None, 0
            self._cond.notify_all()  # keep_all: the reader may hand over the next
            return buf, line, t_ns, t_utc, replaced

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def ended(self) -> bool:
        """Whether the program gave its last frame (the stream or file ended, or it failed)."""
        with self._cond:
            return self._ended is not None and self._newest is None

    def close(self) -> None:
        """Kill the program and wait for it (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._feed is not None:
            self._feed.stop()
        programs.stop(self._proc, self._threads)


_WHY = {CONCEALED: "the stream lost data and the decoder concealed it; frames are inspected again from its next "
                   "key frame",
        BEFORE_KEY_FRAME: "no key frame yet since the stream was (re)joined; frames are inspected from the first"}


class FullDepthStream(Source):
    """A live URL read by the program through :class:`LiveFrames`: a stream OpenCV would cut to 8 bits, at full
    depth; an 8-bit inter-coded one (``bits`` 8, :data:`INTRA_ONLY_CODECS`) as 8-bit BGR, OpenCV's own output
    (measured on an 8-bit H.264 clip: bitwise OpenCV's decoding of the same frames, FFmpeg 5.1), so that the frames
    its decoder makes up are told.

    ``grey``, ``bits``: the stream's kind and declared depth; ``width``, ``height``: its picture size (pixels),
    all as OpenCV's probe found them. Frames come stamped when they arrived, ``lag_ms`` None (module docstring),
    the frames passed over in ``buffers_skipped``; a frame concealed by the decoder (:class:`Concealment`)
    comes with no image, reason ``concealed``, and one output before the first key frame since the (re)connect
    reason ``before_key_frame``: counted, never inspected. Each frame comes at the size it was
    decoded at, its layout naming the decoder's pixel format: a camera reconfigured mid-stream (size, chroma,
    grey) is said by the capture worker as any source's change, never scaled to the first size unsaid
    (:func:`live_command`). An MPEG-2 stream's chroma change at the same size, which FFmpeg's decoder does not
    follow (:class:`ChromaWatch`), ends the connection (SourceChanged): the reopened program's decoder takes it."""

    kind = "url"
    live = True
    one_size = True
    buffered = False  # the newest frame is kept: pacing sleeps, it need not drain anything

    def __init__(self, camera: CameraSection, bit_depth: int | None, grey: bool, bits: int, width: int,
                 height: int, codec: int = 0) -> None:
        super().__init__(camera, bit_depth)
        self._eight_bit = bits <= 8
        self._mpeg2 = codec in MPEG2_CODECS  # its chroma changes watched (ChromaWatch)
        self._grey, self._width, self._height = grey and not self._eight_bit, width, height
        self._wide = None if self._eight_bit else sized_decoder(self._grey, bits, self.describe(), self.bit_depth,
                                                                 f"camera {camera.name}")
        self._frames: LiveFrames | None = None
        self._index = 0

    def _decode(self, raw: np.ndarray, width: int, height: int) -> np.ndarray:
        """One frame of the program's output (uint8 (1, N) bytes, ``width`` x ``height`` pixels) → model input:
        an 8-bit stream's BGR bytes as OpenCV's (H, W, 3) uint8 image, a wide one's samples by the recordings'
        rule (:func:`ffmpeg_frames.full_depth_decoder`). Raises ImageRejected."""
        if self._eight_bit:
            return raw.reshape(height, width, 3)
        return self._wide(raw.reshape(height, width, -1))

    def open(self) -> None:
        """Start the program and wait ``open_timeout_s`` for its first frame; SourceError (transient) if none."""
        self.close()
        analyze_s = self.camera.open_timeout_s / 10  # CvSource._ffmpeg_options' probe, the same reason
        url, feed = str(self.camera.source), None
        try:
            feed = self._relay(url)
            cmd = live_command(self._grey, analyze_s, self._eight_bit, self._mpeg2, fed=feed is not None)
            self._frames = LiveFrames(cmd, (1 if self._grey else 3) * (1 if self._eight_bit else 2),
                                      (self._width, self._height), keep_all=self.camera.mode == "offline",
                                      listing=b"" if feed else url_listing(url, analyze_s), feed=feed)
            feed = None  # the reader's now: closed with it
            self._frames.wait_first(self.camera.open_timeout_s)
        except (OSError, EOFError) as exc:
            if feed is not None:
                feed.stop()
            self.close()
            raise self._error(f"cannot open {self.describe()} with the ffmpeg program ({exc})") from None

    def _relay(self, url: str) -> ts_feed.StreamFeed | None:
        """The relayed stream of ``url`` (:func:`relayed`), its bytes scanned on the way so that an MPEG-TS's joins are
        known (:func:`relay_command`); None where it is not relayed, or is no MPEG-TS where that is read by the program
        itself (:data:`DIRECT_UNLESS_TS`). Raises EOFError when no byte came within ``open_timeout_s``, OSError when
        the relay cannot start."""
        if not relayed(url):
            return None
        feed = ts_feed.StreamFeed(_start_relay(url, self.camera.open_timeout_s),
                                  rtp=urllib.parse.urlsplit(url).scheme.lower() in RTP_SCHEMES)
        ts = feed.starts_ts(self.camera.open_timeout_s)
        if ts is None or (not ts and urllib.parse.urlsplit(url).scheme.lower() in DIRECT_UNLESS_TS):
            feed.stop()
            if ts is None:
                raise EOFError(feed.why() or f"no data within {self.camera.open_timeout_s:g} s")
            return None
        return feed

    def _take(self) -> tuple[bytearray, FrameLine, int, float, int]:
        if self._frames is None:
            raise self._error("source is not open")
        try:
            return self._frames.take(self.camera.read_timeout_s)
        except EOFError as exc:
            raise self._error(f"{self.describe()}: {exc}") from None

    def read(self) -> Grabbed | None:
        buf, line, t_ns, t_utc, replaced = self._take()
        if line.verdict == CHROMA_UNFOLLOWED:  # this frame and every later one decoded wrong: a new decoder
            raise SourceChanged(f"camera '{self.camera.name}': {self.describe()}: the MPEG-2 stream changed its "
                                f"chroma format at the same frame size, which the ffmpeg program's decoder does "
                                f"not follow; reopening")
        meta = {"index": self._index, "lag_ms": None} | ({"buffers_skipped": replaced} if replaced else {})
        self._index += 1
        if line.verdict:  # a picture made up around lost data, or before the first key frame: no decision on it
            return Grabbed(None, t_ns, t_utc, meta, reason=line.verdict, error=f"{self.describe()}: {_WHY[line.verdict]}")
        try:
            image = self._decode(np.frombuffer(buf, np.uint8).reshape(1, -1), line.width, line.height)
        except ImageRejected as exc:
            return Grabbed(None, t_ns, t_utc, meta, error=str(exc),
                           reason=exc.reason if exc.reason == "corrupt" else f"rejected.{exc.reason}")
        # the decoder's samples (grey 12-bit …), which the model input made of them no longer shows
        layout = (keyframe_layouts.layout_of(line.width, line.height, line.pixel_format) if line.pixel_format
                  else FrameLayout.of(image))
        return Grabbed(image, t_ns, t_utc, meta, layout=layout)

    def skip(self) -> bool:
        self._take()
        return True

    def close(self) -> None:
        if self._frames is not None:
            frames, self._frames = self._frames, None
            frames.close()


# Live transports that the FFmpeg inside OpenCV's pip wheels is built without (they need libsrt / librist, which the
# wheels do not link): OpenCV's probe of such a URL fails at once ("did not open" in 12 ms, a listener there:
# measured, opencv-python 5.1), and the camera was retried for ever under a wrong reason (a timeout). Read by the
# ffmpeg program alone (FullDepthUrl._program_alone), its stream probed by ffprobe (probe_stream).
PROGRAM_ONLY_SCHEMES = frozenset({"srt", "rist"})
_PROBE_FIELDS = "stream=codec_name,pix_fmt,width,height,bits_per_raw_sample"
_SAMPLE_BITS = re.compile(r"(\d+)(?:le|be)$")  # a pixel format's bits per sample or per pixel ("gray12le", "rgb48le")


def program_has(scheme: str) -> bool:
    """Whether the installed ``ffmpeg`` program reads the protocol ``scheme`` (its ``-protocols`` input list)."""
    try:
        listed = subprocess.run(["ffmpeg", "-hide_banner", "-protocols"], capture_output=True, text=True,
                                timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    inputs = listed.split("Output:")[0].split()
    return scheme.lower() in inputs


def _stream_bits(stream: dict) -> int:
    """Declared bits per sample of an ffprobe video stream entry: its ``bits_per_raw_sample``, else read from its
    pixel format's name (packed RGB 48 / 64 bits per pixel: 16 per sample); 8 when neither says."""
    raw = str(stream.get("bits_per_raw_sample", "")).strip()
    if raw.isdigit() and 8 < int(raw) <= 16:
        return int(raw)
    fmt = str(stream.get("pix_fmt", ""))
    match = _SAMPLE_BITS.search(fmt)
    if not match:
        return 8
    bits = int(match[1])
    bits = bits // 3 if fmt.startswith(("rgb48", "bgr48")) else bits // 4 if fmt.startswith(("rgba64", "bgra64")) \
        else bits
    return bits if 8 < bits <= 16 else 8


def probe_stream(url: str, analyze_s: float, timeout_s: float) -> tuple[bool, int, int, int, int]:
    """(grey, declared bits, width, height, codec FOURCC: MPEG-2's or 0) of the first video stream of the live ``url``,
    probed by ``ffprobe`` (the URL in a listing pipe, never on its command line: :func:`url_listing`), as OpenCV's
    probe finds them for :class:`FullDepthStream`. Raises OSError (redacted) when it finds none within ``timeout_s``."""
    read, write = os.pipe()
    try:
        os.write(write, url_listing(url, analyze_s))
        os.close(write)
        write = -1
        cmd = ["ffprobe", "-v", "error", "-protocol_whitelist", ",".join(sorted(_URL_SCHEMES)), "-f", "concat",
               "-safe", "0", "-analyzeduration", str(max(1, int(analyze_s * 1e6))), "-select_streams", "v:0",
               "-show_entries", _PROBE_FIELDS, "-of", "json", "-i", f"pipe:{read}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, pass_fds=(read,), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise OSError(f"no video stream found within open_timeout_s {timeout_s:g} s") from None
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    try:
        stream = json.loads(done.stdout or "{}").get("streams", [])[0]
        width, height = int(stream["width"]), int(stream["height"])
    except (ValueError, LookupError, TypeError, AttributeError):
        # its first line says why ("Connection to srt://… failed: Input/output error"), the last only "pipe:3: …"
        said = [re.sub(r"^\[[^\]]*\] ", "", line) for line in done.stderr.splitlines() if line.strip()]
        first = (said or ["no video stream"])[0]
        raise OSError(redact(f"ffprobe: {first}")) from None
    codec = int.from_bytes(b"mpg2", "little") if stream.get("codec_name") == "mpeg2video" else 0
    return str(stream.get("pix_fmt", "")).startswith(("gray", "ya")), _stream_bits(stream), width, height, codec


class FullDepthUrl(ChosenAtOpen):
    """A live URL read by OpenCV (``opencv()``: a new unopened :class:`inspector.pipeline.sources.CvSource`),
    unless its probe found a stream OpenCV cuts to 8 bits or an inter-coded one (its ``by_program``: (FFmpeg
    pixel-format tag, declared bits (8: an 8-bit stream), width, height, codec FOURCC)): then by the ffmpeg program
    (:class:`FullDepthStream`). Decided at each open: a camera reconfigured to another format is read the right
    way after its reconnect."""

    kind = "url"
    live = True
    one_size = True

    def __init__(self, camera: CameraSection, bit_depth: int | None, opencv: Callable[[], Source]) -> None:
        super().__init__(camera, bit_depth)
        self._opencv = opencv
        self._refused = False  # the camera's answer refused the last open (SourceMisconfigured): _ask_first

    def _choose(self) -> Source:
        if urllib.parse.urlsplit(str(self.camera.source)).scheme.lower() in PROGRAM_ONLY_SCHEMES:
            return self._program_alone()
        if self._refused:
            self._ask_first()
        source = self._opencv()
        try:
            source.open()
        except SourceMisconfigured:
            self._refused = True
            raise
        by_program = getattr(source, "by_program", None)
        if by_program is None:
            return source
        source.close()  # before the program connects: a camera may serve one client at a time
        tag, bits, width, height, codec = by_program
        stream = FullDepthStream(self.camera, self.bit_depth, ffmpeg_frames.is_grey_tag(tag), bits, width, height,
                                 codec)
        stream.open()
        return stream


    def _ask_first(self) -> None:
        """After a refused open (a 401, 403 or 404): ask the camera by hand (:func:`rtsp_probe.diagnose`, one
        DESCRIBE) before FFmpeg tries, and raise SourceMisconfigured while it still refuses. Each quiet retry was
        FFmpeg's failed login and then the probe's (two per retry, where cameras lock an account after a few),
        and an FFmpeg error line on stderr each time."""
        found = rtsp_probe.diagnose(str(self.camera.source), self.camera.open_timeout_s)
        if found is not None and found[1]:
            raise self._error(f"cannot open {self.describe()}: {found[0]}", misconfigured=True)
        self._refused = False

    def _program_alone(self) -> FullDepthStream:
        """A :data:`PROGRAM_ONLY_SCHEMES` URL read by the program, its stream probed by ffprobe: SourceError, transient
        when the probe found no stream (the camera down: retried with back-off), permanent when no installed
        program reads that protocol (one line naming the camera, its URL and what to install)."""
        scheme = urllib.parse.urlsplit(str(self.camera.source)).scheme.lower()
        if not (available() and shutil.which("ffprobe") and program_has(scheme)):
            raise self._error(f"cannot open {self.describe()}: OpenCV's FFmpeg has no {scheme} protocol, so "
                              f"{scheme}:// streams are read by the ffmpeg program alone, and "
                              + ("the ffmpeg and ffprobe programs are not both installed" if not
                                 (available() and shutil.which("ffprobe")) else
                                 f"the installed ffmpeg has no {scheme} protocol (built without lib{scheme})"),
                              permanent=True)
        analyze_s = self.camera.open_timeout_s / 10  # as FullDepthStream.open's
        try:
            grey, bits, width, height, codec = probe_stream(str(self.camera.source), analyze_s,
                                                            self.camera.open_timeout_s)
        except OSError as exc:
            raise self._error(f"cannot open {self.describe()} with the ffmpeg program ({exc})") from None
        stream = FullDepthStream(self.camera, self.bit_depth, grey, bits, width, height, codec)
        stream.open()
        return stream


class FileFrames(ffmpeg_frames.FfmpegFrames):
    """The frames of a video *file* read by the program as a live URL is (:func:`file_command`,
    :class:`LiveFrames`, every frame kept): each at the size it was decoded at, where OpenCV's FFmpeg backend
    scales every frame to the first's, and each with its verdict (:meth:`verdict`). Every file read through the
    program is read so: a wide one (:mod:`ffmpeg_frames`) as one whose key frames change size. A cv2.VideoCapture stand-in, as its
    base: ``retrieve`` gives uint8 (H, W, bytes a pixel) (``bgr24``: OpenCV's own (H, W, 3) BGR image),
    :meth:`layout` the decoder's layout of the frame grabbed. ``pixel_bytes``: bytes a pixel of ``pix_fmt``.

    An MPEG-TS file is fed to the program through a pipe (:class:`ts_feed.FileFeed`): its joins of segments are
    then known (no frames skipped at them), and ``follow`` (a recording still being written, any container) feeds it
    on as it grows: ``grab`` then waits at most :data:`ts_feed.FOLLOW_POLL_S` for a frame, and ``waiting``
    says whether a failed grab met the end of what is there (more to come) or the file's end.
    Raises OSError when the program cannot start or the file cannot be opened."""

    def __init__(self, path: str, pix_fmt: str, pixel_bytes: int, props: dict[int, float],
                 follow: bool = False) -> None:
        self._frames: LiveFrames | None = None
        self._pixel_bytes, self._line, self.follow, self.waiting = pixel_bytes, None, follow, False
        super().__init__(path, pix_fmt, props)

    def _start(self, skip: int) -> None:
        self.release()
        self._run_from(0)
        self._index, self._frame = 0, None
        while self._index < skip and self.grab():
            pass

    def _run_from(self, offset: int) -> None:
        """Start the program on the file from byte ``offset`` (an MPEG-TS file is fed: :class:`ts_feed.FileFeed`,
        which stops before an MPEG-2 sequence of another format; :meth:`grab` goes on with a new program there)."""
        size = (int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT]))
        ts = is_ts(self.path)
        fed = self.follow or ts
        self._feed = ts_feed.FileFeed(self.path, self.follow, offset, ts=ts) if fed else None
        self._frames = LiveFrames(file_command(self.path, self.pix_fmt, fed, self.follow, ts), self._pixel_bytes,
                                  size, keep_all=True, feed=self._feed)

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's names
        return self._frames is not None

    def grab(self) -> bool:
        self._frame, self.waiting = None, False
        # no time limit: the program ends at the file's end, as OpenCV's own read of it blocks; a file followed
        # as it grows waits a little (the caller's loop checks its stop event between reads)
        wait_s = ts_feed.FOLLOW_POLL_S if self.follow else None
        while self._frames is not None:
            try:
                self._frame, self._line, *_ = self._frames.take(wait_s)
                break
            except EOFError:  # the file's end (or the program's failure: said by the caller's frame count)
                if not (self._frames.ended and self._feed is not None and self._feed.cut is not None):
                    self.waiting = self.follow and not self._frames.ended
                    break
            self._frames.close()  # its feed stopped before a sequence of another format: a new decoder from there
            self._run_from(self._feed.cut)
        self._index += self._frame is not None
        return self._frame is not None

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        if self._frame is None:
            return False, None
        return True, np.frombuffer(self._frame, np.uint8).reshape(self._line.height, self._line.width, -1)

    def get(self, prop: int) -> float:
        """As the base's; ``CAP_PROP_POS_MSEC``: the grabbed frame's own time (its showinfo line), as OpenCV
        gives it, so that a reader switched here mid-file steps over the frames already read by their time."""
        if prop == cv2.CAP_PROP_POS_MSEC and self._frame is not None and self._line.time_s is not None:
            return self._line.time_s * 1000.0
        return super().get(prop)

    def verdict(self) -> str:
        """Why the grabbed frame is not to be inspected, by the program's log (:class:`Concealment`, as on the
        live path): :data:`CONCEALED` for a frame of a damaged file the decoder made up around the damage (until
        a key frame decoded after it), :data:`BEFORE_KEY_FRAME` for one before the file's first key frame (a
        recording cut between key frames); "" for a frame decoded whole, or none grabbed."""
        return self._line.verdict if self._frame is not None else ""

    def layout(self) -> FrameLayout | None:
        """The grabbed frame's layout by its decoder (:func:`keyframe_layouts.layout_of`); None: not named."""
        line = self._line
        return keyframe_layouts.layout_of(line.width, line.height, line.pixel_format) \
            if self._frame is not None and line.pixel_format else None

    def release(self) -> None:
        if self._frames is not None:
            frames, self._frames = self._frames, None
            frames.close()


def open_at_own_sizes(cap: cv2.VideoCapture, path: str, wide: tuple[bool, int] | None, where: str,
                      bit_depth: int | None, warn_key: str,
                      follow: bool = False) -> tuple[FileFrames, ffmpeg_frames.Decoder | None] | None:
    """A reader of the video file ``path`` giving each frame at its own size with its verdict (:class:`FileFrames`),
    for a file whose key frames change size mid-file (:mod:`keyframe_layouts`) or whose samples are wider than 8
    bits (:mod:`ffmpeg_frames`), and the function making its frames model input (None: they are OpenCV's 8-bit
    BGR already). ``cap``: the file's capture as opened by OpenCV, whose properties it answers; ``wide``: (grey,
    declared bits) of a file to decode at full depth, None for 8-bit BGR; ``follow``: an MPEG-TS recording still
    being written, read on as it grows (:class:`FileFrames`). None when the
    program is missing or gives no first frame (an FFmpeg older than 4.4 has no ``-autoscale``): the caller
    keeps ``cap`` and says the frames are rescaled."""
    if not available():
        return None
    grey = wide is not None and wide[0]
    pix_fmt, pixel_bytes = ("bgr24", 3) if wide is None else ("gray16le", 2) if grey else ("bgr48le", 6)
    props = {p: cap.get(p) for p in ffmpeg_frames.COPIED_PROPS}
    if follow:  # its first frame may be still to be written: waited for by the reader, not here
        try:
            frames = FileFrames(path, pix_fmt, pixel_bytes, props, follow)
        except OSError:
            return None
    elif (frames := ffmpeg_frames.first_frame_ready(lambda: FileFrames(path, pix_fmt, pixel_bytes, props))) is None:
        return None
    decode = None if wide is None else sized_decoder(grey, wide[1], where, bit_depth, warn_key)
    return frames, decode
