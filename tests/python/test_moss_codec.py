"""Tests of the Python module: every reference fixture case through the Python
API (compared by ../shared/fixtures/README.md's rules), streams, dtypes,
errors and threads.

Run by ctest as `python3 -m unittest` with PYTHONPATH at the built module and
MOSS_FIXTURES_DIR at the fixture folders.
"""
import json
import os
import pathlib
import struct
import tempfile
import threading
import unittest

import numpy as np

import moss_codec

FIXTURES = os.environ.get("MOSS_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "../../../shared/fixtures"))
FIXTURE_NAMES = ["tiny", "small-24k", "stereo-48k-v2", "variants"]


def read_safetensors(path):
    """The fixtures' case tensors (F32 and I64) as NumPy arrays."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out


def assert_close(test, got, expected, what):
    tol = 1e-4 * max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    err = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    test.assertLessEqual(err, tol, f"{what}: max abs error {err} > {tol}")


def assert_codes_match(test, got, expected, margins, lengths, what):
    """Codes may differ only where the reference's best-vs-second gap was
    below 1e-4; after the first such difference in a frame, its later codes
    may differ too."""
    nq = expected.shape[0]
    test.assertEqual(got.shape[0], nq, what)
    for b, length in enumerate(lengths):
        for t in range(int(length)):
            for i in range(nq):
                if got[i, b, t] != expected[i, b, t]:
                    test.assertLess(margins[i, b, t], 1e-4, f"{what}: code {i} of frame {t}, row {b} differs")
                    break


class FixtureCases(unittest.TestCase):
    """Each case of each fixture folder through the Python API."""

    def run_fixture(self, name):
        folder = os.path.join(FIXTURES, name)
        self.assertTrue(os.path.isdir(folder), f"fixture folder {folder} is missing")
        codec = moss_codec.Codec.load(folder)
        with open(os.path.join(folder, "cases.json")) as f:
            cases = json.load(f)["cases"]
        tensors = read_safetensors(os.path.join(folder, "cases.safetensors"))
        ran = 0
        for case in cases:
            with self.subTest(fixture=name, case=case["name"]):
                self.run_case(codec, case, tensors)
                ran += 1
        self.assertGreater(ran, 0)

    def run_case(self, codec, case, tensors):
        op, args, ins, outs = case["op"], case.get("args", {}), case["inputs"], case["outputs"]
        nq = args.get("num_quantizers")
        what = case["name"]
        if op in ("encode", "batch_encode"):
            if op == "encode":
                mask = tensors[ins["padding_mask"]] if "padding_mask" in ins else None
                r = codec.encode(
                    tensors[ins["input_values"]],
                    padding_mask=mask,
                    num_quantizers=nq,
                    chunk_duration=args.get("chunk_duration"),
                    return_module_outputs="encoder_module_outputs" in outs,
                )
            else:
                r = codec.batch_encode([tensors[n] for n in ins["wav_list"]], num_quantizers=nq)
            lengths = tensors[outs["audio_codes_lengths"]]
            np.testing.assert_array_equal(r.code_lengths, lengths, what)
            np.testing.assert_array_equal(r.audio_codes_lengths, lengths, what)
            self.assertEqual(r.codes.dtype, np.int64)
            expected = tensors[outs["audio_codes"]]
            assert_codes_match(self, r.codes, expected, tensors[outs["code_margins"]], lengths, what)
            hidden = tensors[outs["encoder_hidden_states"]]
            for b, length in enumerate(lengths):
                assert_close(self, r.hidden_states[b, :, :length], hidden[b, :, :length], what + " hidden")
            for m, name in enumerate(outs.get("encoder_module_outputs", [])):
                exp = tensors[name]
                rate = exp.shape[2] // hidden.shape[2] if hidden.shape[2] else 1
                for b, length in enumerate(lengths):
                    n = int(length) * rate
                    assert_close(self, r.module_outputs[m][b, :, :n], exp[b, :, :n], f"{what} module {m}")
        elif op in ("decode", "batch_decode"):
            if op == "decode" and "chunk_tokens" in args:
                chunks = []
                codec.streaming_decode(tensors[ins["audio_codes"]], args["chunk_tokens"], chunks.append,
                                       num_quantizers=nq)
                audio = np.concatenate(chunks, axis=2)
                lengths = tensors[outs["audio_lengths"]]
            else:
                if op == "decode":
                    mask = tensors[ins["padding_mask"]] if "padding_mask" in ins else None
                    r = codec.decode(tensors[ins["audio_codes"]], padding_mask=mask, num_quantizers=nq,
                                     chunk_duration=args.get("chunk_duration"))
                else:
                    r = codec.batch_decode([tensors[n] for n in ins["codes_list"]], num_quantizers=nq)
                lengths = tensors[outs["audio_lengths"]]
                np.testing.assert_array_equal(r.audio_lengths, lengths, what)
                audio = r.audio
            expected = tensors[outs["audio"]]
            self.assertEqual(audio.dtype, np.float32)
            for b, length in enumerate(lengths):
                assert_close(self, audio[b, :, :length], expected[b, :, :length], what + " audio")
        else:
            self.fail(f"unknown op {op} in {what}")

    def test_tiny(self):
        self.run_fixture("tiny")

    def test_small_24k(self):
        self.run_fixture("small-24k")

    def test_stereo_48k_v2(self):
        self.run_fixture("stereo-48k-v2")

    def test_variants(self):
        self.run_fixture("variants")


class Api(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.codec = moss_codec.Codec.load(os.path.join(FIXTURES, "tiny"))
        cls.rng = np.random.default_rng(7)

    def audio(self, n):
        return (0.3 * self.rng.standard_normal(n)).astype(np.float32)

    def test_properties(self):
        c = self.codec
        self.assertEqual(c.sampling_rate, 24)
        self.assertEqual(c.downsample_rate, 4)
        self.assertEqual(c.frame_rate, 6.0)
        self.assertEqual(c.channels, 1)
        self.assertEqual(c.num_quantizers, 4)
        self.assertEqual(c.codebook_size, 16)
        self.assertTrue(c.has_encoder and c.has_decoder)
        self.assertEqual(json.loads(c.config_json)["sampling_rate"], 24)
        self.assertIn("Codec(", repr(c))
        self.assertRegex(moss_codec.__version__, r"^\d+\.\d+\.\d+$")
        r = c.weight_residency()
        self.assertEqual(r["mapped_bytes"], os.path.getsize(os.path.join(FIXTURES, "tiny", "model.safetensors")))
        if r["known"]:
            self.assertLessEqual(r["huge_page_bytes"], r["resident_bytes"])
            self.assertLessEqual(r["resident_bytes"], r["mapped_bytes"])

    def test_encoder_and_decoder_only_loading(self):
        folder = os.path.join(FIXTURES, "tiny")
        enc = moss_codec.Codec.load(pathlib.Path(folder), parts="encoder")
        dec = moss_codec.Codec.load(folder, parts="decoder")
        self.assertTrue(enc.has_encoder and not enc.has_decoder)
        self.assertTrue(dec.has_decoder and not dec.has_encoder)
        codes = enc.encode(self.audio(40)).codes
        np.testing.assert_array_equal(dec.decode(codes).audio, self.codec.decode(codes).audio)
        with self.assertRaisesRegex(moss_codec.Error, "parts: expected 'all', 'encoder' or 'decoder', got 'both'"):
            moss_codec.Codec.load(folder, parts="both")

    def test_half_weights_in_place_equal_upcast(self):
        # variants stores bf16 weights: used in place by default, or upcast.
        folder = os.path.join(FIXTURES, "variants")
        in_place = moss_codec.Codec.load(folder)
        upcast = moss_codec.Codec.load(folder, upcast_half_weights=True)
        audio = self.audio(3 * in_place.downsample_rate + 5)
        a, b = in_place.encode(audio), upcast.encode(audio)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.hidden_states, b.hidden_states)
        np.testing.assert_array_equal(in_place.decode(a.codes).audio, upcast.decode(a.codes).audio)

    def test_pack_weights_changes_no_result(self):
        # The fixtures' matrices are too small to be packed (the C++ tests
        # pack wider ones): this checks the option reaches the loader and
        # that loading with it gives the same model.
        packed = moss_codec.Codec.load(os.path.join(FIXTURES, "small-24k"), pack_weights=True)
        plain = moss_codec.Codec.load(os.path.join(FIXTURES, "small-24k"))
        audio = self.audio(3 * plain.downsample_rate + 5)
        a, b = plain.encode(audio), packed.encode(audio)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(plain.decode(a.codes).audio, packed.decode(a.codes).audio)

    def test_lock_weights_locks_the_weights_read_in_place(self):
        folder = os.path.join(FIXTURES, "small-24k")
        locked = moss_codec.Codec.load(folder, lock_weights=True)
        plain = moss_codec.Codec.load(folder)
        self.assertGreater(locked.weight_info()["in_place_bytes"], 0)
        # Under AddressSanitizer (LD_PRELOAD) mlock is a no-op that reports success.
        if locked.weight_residency()["known"] and "asan" not in os.environ.get("LD_PRELOAD", ""):
            self.assertGreaterEqual(locked.weight_residency()["locked_bytes"], locked.weight_info()["in_place_bytes"])
            self.assertEqual(plain.weight_residency()["locked_bytes"], 0)
        audio = self.audio(3 * plain.downsample_rate + 5)
        np.testing.assert_array_equal(plain.encode(audio).codes, locked.encode(audio).codes)

    def test_save_packed_needs_packed_matrices(self):
        # The fixtures' matrices are too small to pack (the C++ tests write and
        # load packed checkpoints of wider ones): the refusal names the cause,
        # and nothing is written.
        info = self.codec.weight_info()
        self.assertEqual(info["packed_bytes"], 0)
        self.assertGreater(info["parameters"], 0)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(Exception, "no matrix is packed"):
                self.codec.save_packed(os.path.join(d, "packed"))
            self.assertFalse(os.path.exists(os.path.join(d, "packed", "model.safetensors")))

    def test_shapes_dtypes_and_layouts_agree(self):
        a = self.audio(50)
        r = self.codec.encode(a)
        self.assertEqual(r.codes.shape, (4, 1, 13))  # ceil(50 / 4) frames, the last one partial
        self.assertEqual(r.code_lengths.tolist(), [12])
        # (T), (B, T) and (B, C, T) and float64 input are the same call.
        for same in (a[None], a[None, None], a.astype(np.float64)):
            np.testing.assert_array_equal(self.codec.encode(same).codes, r.codes)
        d = self.codec.decode(r.codes)
        self.assertEqual(d.audio.shape, (1, 1, 52))
        # (nq, T), (T, nq) and int32 codes decode alike.
        for same in (r.codes[:, 0, :], r.codes[:, 0, :].T, r.codes.astype(np.int32)):
            np.testing.assert_array_equal(self.codec.decode(same).audio, d.audio)
        prefix = self.codec.decode(r.codes[:2], num_quantizers=2)
        self.assertEqual(prefix.audio.shape, d.audio.shape)
        self.assertFalse(np.array_equal(prefix.audio, d.audio))

    def test_lengths_and_padding_mask_agree(self):
        a = np.stack([self.audio(48), self.audio(48)])
        mask = np.ones((2, 48), dtype=bool)
        mask[1, 30:] = False
        by_mask = self.codec.encode(a, padding_mask=mask)
        by_lengths = self.codec.encode(a, lengths=[48, 30])
        np.testing.assert_array_equal(by_mask.codes, by_lengths.codes)
        # Float masks (as from torch) of exact 0/1 and integer masks agree.
        for same in (mask.astype(np.float32), mask.astype(np.int8)):
            np.testing.assert_array_equal(self.codec.encode(a, padding_mask=same).codes, by_lengths.codes)
        self.assertEqual(by_mask.code_lengths.tolist(), [12, 7])
        # Each row equals encoding it alone.
        alone = self.codec.encode(a[1, :30])
        np.testing.assert_array_equal(by_lengths.codes[:, 1, :7], alone.codes[:, 0, :7])

    def test_streams_equal_offline_for_any_pushes(self):
        a = self.audio(103)
        offline = self.codec.encode(a)
        enc = moss_codec.EncoderStream(self.codec)
        codes = []
        pos = 0
        for n in (1, 6, 0, 17, 3, 40, 36):
            c, h = enc.push(a[pos : pos + n])
            self.assertEqual(h.shape[1], c.shape[1])
            codes.append(c)
            pos += n
        self.assertEqual(pos, 103)
        self.assertEqual(enc.buffered_samples, 3)
        codes.append(enc.flush()[0])
        np.testing.assert_array_equal(np.concatenate(codes, axis=1), offline.codes[:, 0, :])
        self.assertEqual(enc.stats["frames"], 26)

        # Encoder streams pushed together: each one's codes are its own pushes'.
        encs = [moss_codec.EncoderStream(self.codec) for _ in range(2)]
        got = [[], []]
        for lo, hi in ((0, 7), (7, 30), (30, 30), (30, 103)):
            for i, (c, h) in enumerate(moss_codec.EncoderStream.push_batch(encs, [a[lo:hi], a[lo // 2 : hi // 2]])):
                self.assertEqual(h.shape[1], c.shape[1])
                got[i].append(c)
        got[0].append(encs[0].flush()[0])
        np.testing.assert_array_equal(np.concatenate(got[0], axis=1), offline.codes[:, 0, :])
        half = self.codec.encode(a[: 103 // 2])
        np.testing.assert_array_equal(np.concatenate(got[1], axis=1), half.codes[:, 0, : 51 // 4])
        encs[0].reset()
        with self.assertRaisesRegex(moss_codec.Error, r"stream 1: .*NaN"):
            moss_codec.EncoderStream.push_batch(encs, [a[:4], np.full(4, np.nan, np.float32)])
        self.assertEqual(encs[0].buffered_samples, 0)

        full = self.codec.decode(offline.codes)
        dec = moss_codec.DecoderStream(self.codec)
        parts, t = [], 0
        for n in (1, 2, 5, 1, 9, 8):
            parts.append(dec.push(offline.codes[:, 0, t : t + n]))
            t += n
        np.testing.assert_allclose(np.concatenate(parts, axis=1), full.audio[0], rtol=0, atol=1e-6)
        self.assertGreater(dec.stats["cache_bytes"], 0)
        dec.reset()
        self.assertEqual(dec.stats["frames"], 0)

        # Streams pushed together, each at its own position and pace: each
        # one's audio is the offline audio of its frames.
        hop = self.codec.downsample_rate
        streams = [moss_codec.DecoderStream(self.codec) for _ in range(3)]
        streams[2].push(offline.codes[:, 0, :4])  # a stream further along
        got = [[], [], []]
        for r in range(10):
            pieces = [offline.codes[:, 0, 2 * r : 2 * r + 2], offline.codes[:, 0, r : r + 1], offline.codes[:, 0, 4 + r : 5 + r]]
            for i, audio in enumerate(moss_codec.DecoderStream.push_batch(streams, pieces)):
                got[i].append(audio)
        for i, (first, last) in enumerate([(0, 20), (0, 10), (4, 14)]):
            np.testing.assert_allclose(np.concatenate(got[i], axis=1), full.audio[0][:, first * hop : last * hop], rtol=0, atol=1e-5)
        self.assertEqual([s.stats["frames"] for s in streams], [20, 10, 14])
        with self.assertRaisesRegex(moss_codec.Error, "stream 1 is stream 0 again"):
            moss_codec.DecoderStream.push_batch([streams[0], streams[0]], [pieces[0], pieces[0]])
        with self.assertRaisesRegex(moss_codec.Error, r"codes\[1\]"):
            moss_codec.DecoderStream.push_batch(streams[:2], [pieces[0], np.zeros((4, 1), np.float32)])
        self.assertEqual([s.stats["frames"] for s in streams], [20, 10, 14])

        chunks = []
        self.codec.streaming_decode(offline.codes, 3, chunks.append)
        self.assertEqual([c.shape for c in chunks][:2], [(1, 1, 12), (1, 1, 12)])
        np.testing.assert_allclose(np.concatenate(chunks, axis=2), full.audio, rtol=0, atol=1e-6)

        # An exception in the callback stops the decode and reaches the caller as itself.
        seen = []

        def stop_at_second(chunk):
            seen.append(chunk)
            if len(seen) == 2:
                raise KeyError("stop here")

        with self.assertRaisesRegex(KeyError, "stop here"):
            self.codec.streaming_decode(offline.codes, 3, stop_at_second)
        self.assertEqual(len(seen), 2)

    def test_bad_input_raises_named_errors(self):
        c = self.codec
        cases = [
            (lambda: c.encode(np.zeros(8, dtype=np.int16)), "audio: expected floating-point samples, got dtype int16"),
            (lambda: c.encode("not audio"), "audio"),
            (lambda: c.encode(np.array([0.0, np.nan, 0.0, 0.0], dtype=np.float32)), "NaN"),
            (lambda: c.encode(self.audio(8), lengths=[9]), "length"),
            (lambda: c.encode(self.audio(8), num_quantizers=5), "num_quantizers"),
            (lambda: c.encode(np.zeros(8, dtype=np.complex64)), "got dtype complex64"),
            (lambda: c.encode(self.audio(8)[None], padding_mask=np.full((1, 8), 0.5)), "padding_mask: value 0.5"),
            (lambda: moss_codec.Codec.load(os.path.join(FIXTURES, "tiny"), threads=-3), "threads must be >= 0"),
            (lambda: c.decode(np.zeros((4, 3), dtype=np.float32)), "codes: expected an integer array, got dtype float32"),
            (lambda: c.decode(np.ones((4, 3), dtype=bool)), "codes: expected an integer array, got dtype bool"),
            (lambda: c.decode(np.full((4, 3), 16)), "outside the codebook"),
            (lambda: c.decode(np.full((4, 3), -1)), "outside the codebook"),
            # Values that would wrap into the codebook when narrowed to int32.
            (lambda: c.decode(np.full((4, 3), 2**32 + 1)), "value 4294967297 at flat index 0 is outside any codebook"),
            (lambda: c.decode(np.full((4, 3), 2**64 - 1, dtype=np.uint64)), "out of range"),
            (lambda: c.decode(np.zeros((5, 3), dtype=np.int64)), "NQ"),
            (lambda: c.batch_decode([]), "empty"),
            (lambda: moss_codec.DecoderStream(c).push(np.zeros((4, 0), dtype=np.int64)), "needs at least one new frame"),
            (lambda: moss_codec.Codec.load("/nonexistent/checkpoint"), "/nonexistent/checkpoint"),
        ]
        for call, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(moss_codec.Error) as ctx:
                    call()
                self.assertIn(message, str(ctx.exception))
                self.assertIsInstance(ctx.exception, ValueError)

    def test_audio_files_round_trip_and_are_never_overwritten(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.wav")
            s = self.audio(1000)
            stereo = np.stack([s, -s])
            moss_codec.write_audio(path, stereo, 1000)
            back, rate = moss_codec.read_audio(path)
            self.assertEqual(rate, 1000)
            np.testing.assert_array_equal(back, stereo)
            with self.assertRaisesRegex(moss_codec.Error, "x.wav: already exists"):
                moss_codec.write_audio(path, stereo[:1], 1000)
            np.testing.assert_array_equal(moss_codec.read_audio(path)[0], stereo)
            # As model input of the mono 24 Hz model: resampled to 24 samples
            # per second, channels averaged (here to silence).
            x = self.codec.read_audio(path)
            self.assertEqual(x.shape, (1, 1, 24))
            self.assertLess(float(np.max(np.abs(x))), 1e-6)
            moss_codec.write_audio(path, np.stack([s, s]), 1000, overwrite=True)
            self.assertGreater(float(np.max(np.abs(self.codec.read_audio(path)))), 0.01)
            with self.assertRaisesRegex(moss_codec.Error, "samples: expected floating-point samples"):
                moss_codec.write_audio(path, np.zeros(10, dtype=np.int32), 1000, overwrite=True)

    def test_audio_pieces_concatenate_to_read_audio(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "long.wav")
            rng = np.random.default_rng(4)
            moss_codec.write_audio(path, rng.uniform(-0.5, 0.5, (2, 3517)).astype(np.float32), 1000)
            whole = self.codec.read_audio(path)[0]  # (C, T) at 24 Hz
            pieces = self.codec.read_audio_pieces(path, seconds=0.5)
            got = list(pieces)
            self.assertEqual([p.shape[1] for p in got[:-1]], [12] * (len(got) - 1))
            self.assertLessEqual(got[-1].shape[1], 12)
            self.assertEqual(pieces.frames_read, whole.shape[1])
            np.testing.assert_array_equal(np.concatenate(got, axis=1), whole)
            # Pieces feed an EncoderStream: the codes of its whole frames are offline's.
            stream = moss_codec.EncoderStream(self.codec)
            codes = np.concatenate([stream.push(p)[0] for p in self.codec.read_audio_pieces(path, seconds=0.25)], axis=1)
            offline = self.codec.encode(whole[None]).codes[:, 0, :codes.shape[1]]
            self.assertGreater(codes.shape[1], 0)
            np.testing.assert_array_equal(codes, offline)
            with self.assertRaisesRegex(moss_codec.Error, "seconds must be > 0"):
                self.codec.read_audio_pieces(path, seconds=0)
            with self.assertRaisesRegex(moss_codec.Error, "missing.wav: no such audio file"):
                self.codec.read_audio_pieces(os.path.join(d, "missing.wav"))

    def test_threads_share_one_codec(self):
        inputs = [self.audio(60 + 4 * i) for i in range(4)]
        expected = [self.codec.encode(a).codes for a in inputs]
        got = [None] * 4

        def work(i):
            for _ in range(5):
                got[i] = self.codec.encode(inputs[i]).codes

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)


if __name__ == "__main__":
    unittest.main()
