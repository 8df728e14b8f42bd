"""An MPEG-TS video file handed to the ``ffmpeg`` program through a pipe (:class:`FileFeed`), read on as it grows,
and the joins of segments put together byte for byte (:class:`TsJoins`).

A recording still being written, read by a demuxer that reaches the end of what is there, is read wrong: FFmpeg's
MPEG-TS demuxer hands over the packet it was assembling as it is at the end of the file, the decoder conceals the
missing part, and OpenCV gives that frame as any other; the seek back that reads on once the file has grown then
steps over the real frame as already read (by its time). Measured, FFmpeg 5.1 / OpenCV 5, a TS of 100 H.264 frames
copied in 3 kB parts: 38 frames made up, 37 lost; MPEG-2: 80 of 100 read, out of order. Fed through a pipe, the
demuxer never meets an end before the file's own: it waits for the rest of a packet as it waits on a live stream,
and every frame is decoded whole, once, in order. The pipe is closed once the file is no longer written
(:class:`inspector.pipeline.file_settle.SettleWatch`, the rule of the video sources), or the name stands for
another file (rotated).

Segments joined with ``cat`` (an NVR's, a user's) restart the TS packets' continuity counter at the join, which
FFmpeg's demuxer takes for lost packets: it flags the *last* packet before the join, whole, "Packet corrupt", and
the frames after it were skipped as made up (26 of 80 frames of two joined 40-frame segments counted
``concealed``, the second segment's first key-frame interval among them). A join is told from a loss by the TS
packets themselves (ISO/IEC 13818-1 §2.4.3.3): the break in the count falls on the packet that starts a PES
(payload_unit_start_indicator) flagged a random access point (random_access_indicator, which muxers set on key
frames): nothing after it leans on what came before, and the packet flagged is whole (a cut one is a decoder's
error, still a loss). Such a packet's decode time (``dts``, as the demuxer's warning names it) is
excused (:class:`inspector.pipeline.ffmpeg_live.Concealment`). A count broken anywhere else is a loss, as before, and
so is a break after a PES short of the size its header declares (PES_packet_length): packets lost at a segment's end,
just before the next one's first packet, have a join's look. A PES of unbounded size (FFmpeg writes video's so)
cannot tell that: the decoder's own complaint about the cut frame is then what tells the loss (measured: it does,
libx264 and MPEG-2).

An MPEG-1/2 video sequence of another size or chroma format (a camera reconfigured) ends the feed before its
first packet (``FileFeed.cut``), and a new program is fed from there (``ffmpeg_live.FileFrames``): FFmpeg's MPEG-2
decoder drops the picture it holds at a new size and keeps the first chroma format at the same size (4:2:2 frames
decoded as 4:2:0, 20 levels off), where a decoder flushed at the end of its part and one started at the new
sequence lose nothing and decode each part right.
"""

from __future__ import annotations

import collections
import os
import select
import struct
import threading
import time
from typing import BinaryIO

import numpy as np

from inspector.pipeline import programs
from inspector.pipeline.file_settle import SettleWatch
from inspector.pipeline.recording_ends import TS_PACKET

_SYNC = 0x47
_NULL_PID = 0x1FFF
_CHUNK = 1 << 20  # bytes read and fed at a time
FOLLOW_POLL_S = 0.05  # at the end of what is there of a file still being written: look again after this


def _timestamp(five: np.ndarray) -> int:
    """A PES header's 33-bit PTS / DTS from its 5 bytes (ISO/IEC 13818-1 §2.4.3.7)."""
    b = [int(x) for x in five]
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


class TsJoins:
    """The joins of segments put together byte for byte in an MPEG-TS, found as its whole packets pass
    (:meth:`scan`, in order, from the file's start or a cut): ``dts``, the decode time (90 kHz, as the demuxer's
    "Packet corrupt" warning names it; its PTS where it has no DTS) of the PES before each join (module docstring);
    and the packets where an MPEG-1/2 video sequence of another size or chroma format begins (``scan``'s answer:
    the feed is cut there, :class:`FileFeed`). Bytes that are not plain 188-byte packets stop the scan: no join
    is excused, no cut made from then on."""

    def __init__(self) -> None:
        # a Counter, not a set: a sender looping the same segments repeats their decode times, and each join excuses
        # one warning (Concealment takes it): a loss after the PES before an earlier join is still a loss
        self.dts: collections.Counter[int] = collections.Counter()
        self._cc: dict[int, int] = {}  # PID → continuity counter of its last packet with a payload
        self._after_loss: set[int] = set()  # PIDs whose next packet follows a loss the carrier told (mark_loss)
        self._lost_next: set[int] = set()  # … met in this chunk: its first payload packet is no join
        self._last: dict[int, np.ndarray] = {}  # PID → its last packet with a payload (a duplicate repeats it)
        self._last_dts: dict[int, int] = {}  # PID → decode time of its last PES start
        self._format: dict[int, bytes] = {}  # PID → its MPEG-1/2 sequence's size and chroma fields
        self._open_pes: dict[int, tuple[int, int]] = {}  # PID → (bytes its open PES declared, 0: unbounded; got)
        self._lost = False

    def mark_loss(self) -> None:
        """The carrier lost packets before the next ones :meth:`scan` takes (an RTP sequence number skipped): the next
        packet of every PID follows a loss, never a join, whatever it starts (:meth:`_break_after_loss`)."""
        self._after_loss = set(self._cc)  # a PID first met after it has no count to break

    def _break_after_loss(self, packets: np.ndarray, pid: np.ndarray) -> None:
        """Make the first payload packet of each PID after a carrier's loss a continuity break the demuxer sees and
        this scan takes for no join. The bytes lost may have held a whole number of 16 packets of a PID (its count
        then runs on unbroken: nothing flagged) or ended just before a segment's first packet (a join's look):
        either way the frames resting on them were made up. Its count is set one past the next expected (``data``
        must then be writable: a bytearray)."""
        for at in np.flatnonzero(packets[:, 3] & 0x10 != 0):
            one = int(pid[at])
            if one not in self._after_loss:
                continue
            self._after_loss.discard(one)
            self._lost_next.add(one)
            if one in self._cc and packets[at, 3] & 0x0F == (self._cc[one] + 1) % 16:
                packets[at, 3] = (packets[at, 3] & 0xF0) | (self._cc[one] + 2) % 16

    def scan(self, data: bytes | bytearray) -> int | None:
        """Take whole packets (``len(data)`` a multiple of 188); the offset in ``data`` of the first packet that
        begins a sequence of another format, None where none does."""
        count = len(data) // TS_PACKET
        packets = np.frombuffer(data, np.uint8, count * TS_PACKET).reshape(count, TS_PACKET)
        if self._lost or (count and (packets[:, 0] != _SYNC).any()):
            self._lost = True
            return None
        pid = (packets[:, 1].astype(np.int32) & 0x1F) << 8 | packets[:, 2]
        if self._after_loss:
            self._break_after_loss(packets, pid)
        cuts = [self._scan_pid(int(one), packets[pid == one], np.flatnonzero(pid == one))
                for one in np.unique(pid[(packets[:, 3] & 0x10 != 0) & (pid != _NULL_PID)])]
        cuts = [cut for cut in cuts if cut is not None]
        return min(cuts) * TS_PACKET if cuts else None

    def _scan_pid(self, pid: int, packets: np.ndarray, rows: np.ndarray) -> int | None:
        """One PID's packets of a chunk (``rows``: their places in it), in order: its joins noted, its count,
        last decode time and sequence format carried on; the place of a packet beginning a sequence of another
        format (:meth:`_sequence_changed`), None for none."""
        payload = packets[:, 3] & 0x10 != 0
        packets, rows = packets[payload], rows[payload]  # with a payload: only those count (§2.4.3.3)
        cc = (packets[:, 3] & 0x0F).astype(np.int16)
        before = np.concatenate([[self._cc.get(pid, -1)], cc[:-1]])
        previous = np.concatenate([self._last.get(pid, np.zeros((1, TS_PACKET), np.uint8)), packets[:-1]])
        adapted = (packets[:, 3] & 0x20 != 0) & (packets[:, 4] > 0)
        flags = np.where(adapted, packets[:, 5], 0)
        starts = packets[:, 1] & 0x40 != 0
        # a duplicate packet repeats the one before, count and all (§2.4.3.3): the same count on another packet is a
        # break (FFmpeg's demuxer takes it for one: a segment whose first count was its predecessor's last, one join
        # in 16, was counted lost); a discontinuity_indicator announces a break
        duplicate = (cc == before) & (packets == previous).all(axis=1)
        broken = (before >= 0) & (cc != (before + 1) % 16) & ~duplicate & (flags & 0x80 == 0)
        lost = self._cut_short(pid, packets, starts)  # a loss at a PES's end, whatever follows it
        if pid in self._lost_next:  # its first packet follows a loss the carrier told (mark_loss): never a join
            self._lost_next.discard(pid)
            lost[:1] = True
        joins = np.flatnonzero(broken & starts & (flags & 0x40 != 0) & ~lost)
        pes = np.flatnonzero(starts)
        for at in joins:
            earlier = pes[pes < at]
            dts = self._pes_dts(packets[earlier[-1]]) if len(earlier) else self._last_dts.get(pid)
            if dts is not None:
                self.dts[dts] += 1
        if len(pes) and (dts := self._pes_dts(packets[pes[-1]])) is not None:
            self._last_dts[pid] = dts
        self._cc[pid] = int(cc[-1])
        self._last[pid] = packets[-1:].copy()
        return next((int(rows[at]) for at in pes if self._sequence_changed(pid, packets[at])), None)

    def _cut_short(self, pid: int, packets: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """For each of a PID's payload packets, whether the PES it ends (it starts the next) came short of the size its
        header declared (PES_packet_length, ISO/IEC 13818-1 §2.4.3.7; 0, unbounded: never short). Packets lost at a
        PES's end, just before the next segment's first packet, looked like a join: the break falls on a key frame's
        first packet all the same, and the damaged PES (FFmpeg's "PES packet size mismatch", then "Packet corrupt")
        was excused. The PES still open at the chunk's end is carried on."""
        adapted = packets[:, 3] & 0x20 != 0
        sizes = np.maximum(0, TS_PACKET - 4 - np.where(adapted, 1 + packets[:, 4].astype(np.int64), 0))
        before = np.concatenate([[0], np.cumsum(sizes)])  # payload bytes of the chunk before each packet
        declared, got = self._open_pes.get(pid, (0, 0))
        short, begun = np.zeros(len(packets), bool), 0
        for at in np.flatnonzero(starts):
            short[at] = declared > got + before[at] - before[begun]
            declared, got, begun = self._pes_size(packets[at]), 0, int(at)
        self._open_pes[pid] = (declared, got + int(before[-1] - before[begun]))
        return short

    @staticmethod
    def _pes_size(packet: np.ndarray) -> int:
        """The bytes of the PES a packet starts as its header declares them (6 + PES_packet_length); 0 for unbounded
        (a length of 0, which video may have) or no PES header."""
        at = 4 + (1 + int(packet[4]) if packet[3] & 0x20 else 0)
        header = packet[at:at + 6]
        if len(header) < 6 or bytes(header[:3]) != b"\x00\x00\x01":
            return 0
        length = int(header[4]) << 8 | int(header[5])
        return 6 + length if length else 0

    def _sequence_changed(self, pid: int, packet: np.ndarray) -> bool:
        """Whether a PES start holds an MPEG-1/2 sequence header (ISO/IEC 13818-2 §6.2.2.1: start code B3, its size
        fields) and extension (B5, identifier 1: chroma_format) that differ from the PID's sequence before.

        FFmpeg's MPEG-2 decoder takes a new chroma format only with a new size (a 4:2:2 part after a 4:2:0 one at
        the same size decoded 20 levels off, named yuv420p), and drops the picture it holds at a new size (a frame
        of every part lost); a decoder started at the new sequence, after the old one was flushed, does neither."""
        data = bytes(packet[4 + (1 + int(packet[4]) if packet[3] & 0x20 else 0):])
        header = data.find(b"\x00\x00\x01\xb3")
        if header < 0 or len(data) < header + 7:
            return False
        extension = data.find(b"\x00\x00\x01\xb5", header + 12)
        chroma = data[extension + 4:extension + 6] if extension > 0 and data[extension + 4:extension + 5] \
            and data[extension + 4] >> 4 == 1 else b""
        fields = data[header + 4:header + 7] + bytes([(chroma[1] >> 1) & 3 if len(chroma) == 2 else 0])
        before, self._format[pid] = self._format.get(pid), fields
        return before is not None and before != fields

    @staticmethod
    def _pes_dts(packet: np.ndarray) -> int | None:
        """The DTS (else PTS) of the PES a packet starts; None for a packet that starts no PES or names none."""
        at = 4 + (1 + int(packet[4]) if packet[3] & 0x20 else 0)
        header = packet[at:at + 19]
        if len(header) < 14 or bytes(header[:3]) != b"\x00\x00\x01" or header[7] >> 7 == 0:
            return None
        return _timestamp(header[14:19] if header[7] >> 6 == 3 and len(header) == 19 else header[9:14])


class FileFeed:
    """The bytes of the MPEG-TS file ``path`` for the program's stdin (:meth:`run`, on a thread of its own), its
    joins found as they pass (``joins``, :class:`TsJoins`). ``follow``: a recording still being written, fed as it
    grows until it is no longer written (module docstring); else fed to its end as it is now. The file is opened
    here (OSError when it cannot be) and read through that descriptor: a rotation (ours renamed, a new one begun)
    does not switch files under the program. ``ts`` False: a recording of another container (Matroska …) still
    being written, fed as it is (no packets scanned: no joins, no cut), so that the program never meets an end of
    what is there either (:meth:`inspector.pipeline.sources.CvSource._will_follow`)."""

    def __init__(self, path: str, follow: bool, start: int = 0, ts: bool = True) -> None:
        self.path, self.follow, self.ts = path, follow, ts
        self.joins = TsJoins()
        self.cut: int | None = None  # where the feed stopped before an MPEG-2 sequence of another format
        self._fh = open(path, "rb")
        self._fh.seek(start)
        self._inode = os.fstat(self._fh.fileno()).st_ino
        self._stop = threading.Event()

    def run(self, sink: BinaryIO) -> None:
        """Write the file to ``sink`` (a raw pipe) and close it at the file's end, or before a packet beginning an
        MPEG-2 sequence of another format (``cut``: its offset in the file; the caller feeds a new program from
        there: :meth:`TsJoins._sequence_changed`); returns early when stopped or when the program went away."""
        settle, rest = SettleWatch(), b""
        try:
            while not self._stop.is_set():
                data = self._fh.read(_CHUNK)
                if data and not self.ts:
                    self._write(sink, data)
                elif data:
                    rest, data = self._whole_packets(rest + data)
                    # scanned before the program can read them: its warnings find the joins known
                    if (cut := self.joins.scan(data)) is not None:
                        self.cut = self._fh.tell() - len(rest) - len(data) + cut
                        self._write(sink, data[:cut])
                        break
                    self._write(sink, data)
                elif not self.follow or not self._still_written(settle):
                    self._write(sink, rest)  # the file's end: a last cut packet as it is (the demuxer's to judge)
                    break
                else:
                    self._stop.wait(FOLLOW_POLL_S)
        except (OSError, ValueError):  # the program ended, or the pipe was closed under us (stop)
            pass
        finally:
            for closing in (sink, self._fh):
                try:
                    closing.close()
                except OSError:
                    pass

    @staticmethod
    def _whole_packets(data: bytes) -> tuple[bytes, bytes]:
        """(the bytes after the last whole packet, the whole packets) of ``data``."""
        whole = len(data) // TS_PACKET * TS_PACKET
        return data[whole:], data[:whole]

    @staticmethod
    def _write(sink: BinaryIO, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[sink.write(view):]

    def _still_written(self, settle: SettleWatch) -> bool:
        try:
            same = os.stat(self.path).st_ino == self._inode
        except OSError:
            return False
        return same and settle.recording_still_written(self.path)

    def stop(self) -> None:
        self._stop.set()


class RtpUnwrap:
    """The MPEG-TS packets an RTP stream carries (RFC 2250: payload type 33, a whole number of 188-byte TS packets a
    datagram), from the RTP packets relayed one after another (the ``rtp`` protocol read by the ``data`` demuxer:
    each packet whole, header and all; measured, FFmpeg 5.1), their headers taken off (:meth:`take`).

    Over RTP the loss signal is the sequence number (RFC 3550 §5.1), not the TS continuity count: a datagram of 7
    packets lost just before a segment's first packet looks like a join in the TS, and 16 datagrams of one PID lost
    leave its count unbroken. So a skipped (or repeated, or out of order: FFmpeg's RTP demuxer would reorder, this
    does not) sequence number is a loss: :meth:`TsJoins.mark_loss`, whose break the decoding program's demuxer then
    flags as it flags a lost TS packet (:class:`inspector.pipeline.ffmpeg_live.Concealment`). An RTP packet's end is
    where its TS packets end (the next byte is no sync byte 0x47 but the next header's 0x80..0xBF); bytes that parse
    as neither (padding, another payload) are skipped up to the next header of payload type 33, a loss."""

    def __init__(self, joins: TsJoins) -> None:
        self._joins = joins
        self._buf = bytearray()
        self._seq: int | None = None
        self._in_payload = False  # between a header and the end of its TS packets
        self._gap = False  # a loss met since the last packet taken

    def take(self, data: bytes) -> list[tuple[bool, bytearray]]:
        """The TS packets carried in ``data`` (the relay's next bytes), as runs each taken whole: (whether a loss
        came before the run, its packets); bytes of a packet still to come are kept for the next call."""
        self._buf += data
        runs: list[tuple[bool, bytearray]] = [(False, bytearray())]
        at = 0
        while at < len(self._buf):
            if self._in_payload and self._buf[at] == _SYNC:
                if len(self._buf) - at < TS_PACKET:
                    break
                if self._gap:
                    runs.append((True, bytearray()))
                    self._gap = False
                runs[-1][1].extend(self._buf[at:at + TS_PACKET])
                at += TS_PACKET
                continue
            header = self._header(at)
            if header is None:  # not all there yet
                break
            size, seq = header
            # one loss, however many bytes are skipped: marked on the run of the next packets taken
            self._gap |= seq is None or (self._seq is not None and seq != (self._seq + 1) & 0xFFFF)
            self._seq = seq if seq is not None else self._seq
            self._in_payload = seq is not None
            at += size
        del self._buf[:at]
        return [run for run in runs if run[0] or run[1]]

    def _header(self, at: int) -> tuple[int, int | None] | None:
        """(its length, its sequence number) of the RTP header at ``at`` of payload type 33 (1 and None for a byte
        that begins none: skipped); None when its bytes are not all there yet."""
        buf = self._buf
        if len(buf) - at < 12:
            return None
        if buf[at] >> 6 != 2 or buf[at + 1] & 0x7F != 33:
            return 1, None
        size = 12 + 4 * (buf[at] & 0x0F)
        if buf[at] & 0x10:  # a header extension: its length in 32-bit words follows its 16-bit profile field
            if len(buf) - at < size + 4:
                return None
            size += 4 + 4 * struct.unpack_from("!H", buf, at + size + 2)[0]
        return (size, struct.unpack_from("!H", buf, at + 2)[0]) if len(buf) - at >= size else None


class StreamFeed:
    """The bytes of a live stream for the program's stdin, taken from another program relaying them as they come
    (``relay``: its stdout a pipe of the stream's bytes as sent, :func:`inspector.pipeline.ffmpeg_live.relay_command`),
    the joins of an MPEG-TS found as they pass (``joins``, :class:`TsJoins`): a sender that plays segments one after
    another (an NVR's, a playlist's, ``cat``) restarts the continuity count at each, which the decoding program's
    demuxer takes for lost packets, as in a file (module docstring). ``rtp``: the relay hands on RTP packets, whose TS
    packets are taken out and whose sequence numbers tell the losses (:class:`RtpUnwrap`). The stream is scanned from
    its first three packets in step (sync bytes 188 apart); :meth:`starts_ts` says whether it is an MPEG-TS at all
    (another stream's bytes go on as they are, unless the caller reads it without a relay). ``cut`` is always None:
    a live MPEG-2 stream's chroma change reopens the stream (:class:`inspector.pipeline.ffmpeg_live.ChromaWatch`).
    :meth:`why` is the relay's last complaint (the reason the stream ended: the decoding program only met the end of
    its input)."""

    def __init__(self, relay, rtp: bool = False) -> None:
        self.joins = TsJoins()
        self.cut: int | None = None
        self._relay = relay
        self._rtp = RtpUnwrap(self.joins) if rtp else None
        self._head: list[tuple[bool, bytearray]] = []  # the first runs read (starts_ts), aligned on a packet
        self._rest = bytearray()  # bytes of a packet still to come
        self._scanned = True  # False: no MPEG-TS, its bytes handed on as they are
        self._stop = threading.Event()
        self._said: list[str] = []  # the relay's last lines of warning or worse
        self._talk = threading.Thread(target=self._drain_relay, name="ffmpeg-relay-stderr", daemon=True)
        self._talk.start()

    def _drain_relay(self) -> None:
        try:
            for raw in self._relay.stderr:
                line = raw.decode("utf-8", "replace").strip()
                if line and not line.startswith(("[info]", "[verbose]", "[debug]")):
                    self._said = [*self._said[-4:], line]
        except (OSError, ValueError):
            pass

    def _runs(self, data: bytes) -> list[tuple[bool, bytearray]]:
        """The relay's next bytes as runs of whole TS packets, each with whether a loss came before it."""
        runs = self._rtp.take(data) if self._rtp else [(False, bytearray(data))]
        for run in runs:
            whole = (len(self._rest) + len(run[1])) // TS_PACKET * TS_PACKET
            joined = self._rest + run[1]
            run[1][:], self._rest = joined[:whole], joined[whole:]
        return runs

    def starts_ts(self, timeout_s: float) -> bool | None:
        """Read the stream's first bytes (up to ``timeout_s`` seconds for 4 TS packets' worth): whether it is an
        MPEG-TS, 3 sync bytes 188 apart (a relayed RTP stream: of payload type 33); None when no byte came. Its
        packets are aligned on the first such run (bytes before it, a packet cut by the join, dropped) and kept for
        :meth:`run`."""
        deadline, source = time.monotonic() + timeout_s, self._relay.stdout.fileno()
        head, runs = bytearray(), []
        while len(head) < 4 * TS_PACKET and (left := deadline - time.monotonic()) > 0:
            if not select.select([source], [], [], left)[0] or not (data := os.read(source, _CHUNK)):
                break
            if self._rtp:  # its TS packets, whole and aligned
                runs += self._rtp.take(data)
                head = bytearray(b"".join(run for _, run in runs))
            else:
                head += data
        start = next((at for at in range(min(TS_PACKET, len(head) - 2 * TS_PACKET))
                      if head[at] == head[at + TS_PACKET] == head[at + 2 * TS_PACKET] == _SYNC), None)
        if start is not None:
            self._head = runs if self._rtp else self._runs(bytes(head[start:]))
        else:  # handed on as it is, unscanned (run), if the caller keeps the relay
            self._head, self._scanned = [(False, head)], False
        return None if not head and not runs else start is not None

    def run(self, sink: BinaryIO) -> None:
        """Write the TS packets relayed to ``sink`` (a raw pipe) as they come, their joins and losses noted before the
        program can read them, and close it when the relay ends or the feed is stopped."""
        source, runs = self._relay.stdout.fileno(), self._head
        try:
            while True:
                for lost, packets in runs:
                    if lost:
                        self.joins.mark_loss()
                    if self._scanned:  # before the program can read them: its warnings find the joins known
                        self.joins.scan(packets)
                    FileFeed._write(sink, packets)
                if self._stop.is_set() or not (data := os.read(source, _CHUNK)):
                    break
                runs = self._runs(data) if self._scanned else [(False, data)]
        except (OSError, ValueError):  # the program ended, or the pipe was closed under us (stop)
            pass
        finally:
            try:
                sink.close()
            except OSError:
                pass

    def why(self) -> str:
        """The relay's last line of warning or worse ("" for none)."""
        return self._said[-1] if self._said else ""

    def stop(self) -> None:
        self._stop.set()
        programs.stop(self._relay, [self._talk])
