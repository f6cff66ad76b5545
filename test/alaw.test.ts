import t from 'tap'
import { decodeAlaw, encodeAlaw } from '../src/audio/alaw.js'

/**
 * G.711 A-law to linear, all 256 code words, as Python's audioop.alaw2lin gives them: CPython's _st_alaw2linear16
 * table (https://github.com/python/cpython/blob/3.12/Modules/audioop.c), from Sun's reference g711.c.
 */
const G711_ALAW = [
  -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528, -6272, -7040, -6784,
  -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648, -4032, -3904, -3264, -3136, -3520, -3392,
  -22016, -20992, -24064, -23040, -17920, -16896, -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136,
  -11008, -10496, -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056, -12544, -14080, -13568,
  -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504, -488, -408, -392, -440, -424,
  -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248, -232, -152, -136, -184, -168,
  -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184, -1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696,
  -688, -656, -752, -720, -560, -528, -624, -592, -944, -912, -1008, -976, -816, -784, -880, -848,
  5504, 5248, 6016, 5760, 4480, 4224, 4992, 4736, 7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784,
  2752, 2624, 3008, 2880, 2240, 2112, 2496, 2368, 3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392,
  22016, 20992, 24064, 23040, 17920, 16896, 19968, 18944, 30208, 29184, 32256, 31232, 26112, 25088, 28160, 27136,
  11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472, 15104, 14592, 16128, 15616, 13056, 12544, 14080, 13568,
  344, 328, 376, 360, 280, 264, 312, 296, 472, 456, 504, 488, 408, 392, 440, 424,
  88, 72, 120, 104, 24, 8, 56, 40, 216, 200, 248, 232, 152, 136, 184, 168,
  1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016, 1952, 1632, 1568, 1760, 1696,
  688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816, 784, 880, 848
]

/** Linear samples and their A-law code words, as Python's audioop.lin2alaw gives them (same source as above). */
const LIN2ALAW: Array<[number, number]> = [
  [0, 0xd5], [1, 0xd5], [-1, 0x55], [7, 0xd5], [8, 0xd5], [15, 0xd5], [16, 0xd4], [-16, 0x55], [-17, 0x54],
  [255, 0xda], [256, 0xc5], [-256, 0x5a], [1000, 0xfa], [-1000, 0x7a], [4095, 0x9a], [4096, 0x85], [-4096, 0x1a],
  [12345, 0xbd], [-12345, 0x3d], [32256, 0xaa], [-32256, 0x2a], [32767, 0xaa], [-32768, 0x2a]
]

const pcmOf = (samples: number[]): Buffer => {
  const pcm = Buffer.alloc(samples.length * 2)
  samples.forEach((sample, i) => pcm.writeInt16LE(sample, i * 2))
  return pcm
}

t.test('A-law decodes to the G.711 reference values, all 256 code words', async (t) => {
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const pcm = decodeAlaw(every)
  t.equal(pcm.length, 512)
  t.same(Array.from({ length: 256 }, (_, i) => pcm.readInt16LE(i * 2)), G711_ALAW)
})

t.test('A-law encodes as the reference does, and every code word survives a round trip', async (t) => {
  t.same([...encodeAlaw(pcmOf(LIN2ALAW.map(([sample]) => sample)))], LIN2ALAW.map(([, code]) => code))
  // A-law has no second zero (unlike μ-law's 0x7f and 0xff), so all 256 come back as they were.
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  t.same([...encodeAlaw(pcmOf(G711_ALAW))], [...every])
  t.equal(encodeAlaw(Buffer.alloc(3)).length, 1, 'a trailing half sample is not encoded')
})
