import t from 'tap'
import { decodeAlaw, encodeAlaw } from '../src/audio/alaw.js'
import { G711_ALAW } from './helpers/g711.js'

/** Linear samples and their A-law code words, as Python's audioop.lin2alaw gives them (CPython's Modules/audioop.c, like the table). */
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
