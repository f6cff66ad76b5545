import t from 'tap'
import { decodeBase64Pcm } from '../src/audio/pcm.js'

/** What RFC 4648 allows (either alphabet, padding optional but never partial), written as plainly as possible. */
const STRICT = /^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$/

t.test('decodeBase64Pcm accepts exactly the strings RFC 4648 accepts', async (t) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_'
  const junk = '=!@ \n.,*%$~\u00e9'
  let seed = 42
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
  let disagreements = 0
  for (let i = 0; i < 50_000; i++) {
    let text = ''
    const length = Math.floor(random() * 14)
    for (let j = 0; j < length; j++) {
      const pool = random() < 0.15 ? junk : alphabet
      text += pool[Math.floor(random() * pool.length)]
    }
    let accepted: boolean
    try {
      decodeBase64Pcm(text)
      accepted = true
    } catch (err) {
      accepted = !/not valid base64/.test((err as Error).message) // odd byte counts are valid base64
    }
    if (accepted !== STRICT.test(text)) disagreements++
  }
  t.equal(disagreements, 0)
})

t.test('decodeBase64Pcm returns the bytes, and refuses half samples', async (t) => {
  const pcm = Buffer.from([1, 2, 3, 4, 5, 6])
  t.same(decodeBase64Pcm(pcm.toString('base64')), pcm)
  t.same(decodeBase64Pcm(pcm.toString('base64url')), pcm, 'unpadded URL-safe base64 too')
  t.same(decodeBase64Pcm(''), Buffer.alloc(0))
  t.throws(() => decodeBase64Pcm(Buffer.from([1, 2, 3]).toString('base64')), { message: 'payload holds 3 bytes, not a whole number of 16-bit samples' })
})
