import t from 'tap'
import { Resampler } from '../src/audio/resampler.js'

function tone (rate: number, hz: number, seconds: number, amplitude = 10000): Buffer {
  const samples = Math.round(rate * seconds)
  const pcm = Buffer.alloc(samples * 2)
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / rate)), i * 2)
  return pcm
}

/** Signal-to-error ratio in dB against the ideal tone, skipping the edges where the filter sees silence. */
function snr (got: Buffer, want: Buffer, edge = 64): number {
  let signal = 0
  let error = 0
  for (let i = edge; i < want.length / 2 - edge; i++) {
    const ideal = want.readInt16LE(i * 2)
    signal += ideal ** 2
    error += (got.readInt16LE(i * 2) - ideal) ** 2
  }
  return error === 0 ? Infinity : 10 * Math.log10(signal / error)
}

/** Feeds a stream in uneven pieces, as playback messages arrive, then flushes. */
function stream (resampler: Resampler, input: Buffer): Buffer {
  const parts: Buffer[] = []
  let offset = 0
  for (const size of [322, 1000, 642, 4000, 20, 9000]) {
    parts.push(resampler.process(input.subarray(offset, offset + size)))
    offset += size
  }
  parts.push(resampler.process(input.subarray(offset)), resampler.flush())
  return Buffer.concat(parts)
}

for (const [from, to] of [[16000, 8000], [8000, 16000], [24000, 16000], [16000, 24000], [24000, 8000], [48000, 8000], [44100, 8000], [22050, 16000]]) {
  t.test(`${from} Hz → ${to} Hz: exact length, and a 1 kHz tone keeps more than 60 dB SNR`, async (t) => {
    const input = tone(from, 1000, 0.5)
    const output = stream(new Resampler(from, to), input)
    t.equal(output.length / 2, Math.floor(((input.length / 2) * to) / from), 'N × out/in samples, the filter delay compensated')
    const quality = snr(output, tone(to, 1000, 0.5))
    t.ok(quality > 60, `SNR ${quality.toFixed(1)} dB`)
  })
}

t.test('going down, a tone above the new Nyquist frequency is filtered out, not aliased', async (t) => {
  const output = stream(new Resampler(16000, 8000), tone(16000, 6000, 0.5))
  let energy = 0
  for (let i = 64; i < output.length / 2 - 64; i++) energy += output.readInt16LE(i * 2) ** 2
  const rms = Math.sqrt(energy / (output.length / 2 - 128))
  const attenuation = rms === 0 ? Infinity : -20 * Math.log10(rms / (10000 / Math.SQRT2))
  t.ok(attenuation > 60, `6 kHz at 16 kHz → 8 kHz comes out ${attenuation.toFixed(1)} dB down (it would alias to 2 kHz)`)
})

t.test('streaming in pieces gives the same samples as one piece', async (t) => {
  const input = tone(24000, 440, 0.3)
  const whole = new Resampler(24000, 16000)
  t.ok(stream(new Resampler(24000, 16000), input).equals(Buffer.concat([whole.process(input), whole.flush()])))
})
