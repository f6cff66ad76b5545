import { EventEmitter } from 'node:events'

/** A growing list that tests can wait on: waitFor resolves as soon as an item matches, already there or not. */
export class Collected<T> {
  readonly items: T[] = []
  readonly #added = new EventEmitter()

  push (item: T): void {
    this.items.push(item)
    this.#added.emit('item', item)
  }

  waitFor (match: (item: T) => boolean, what = 'a matching item', timeoutMs = 10_000): Promise<T> {
    const found = this.items.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#added.off('item', onItem)
        reject(new Error(`timed out waiting for ${what}`))
      }, timeoutMs)
      const onItem = (item: T): void => {
        if (!match(item)) return
        clearTimeout(timer)
        this.#added.off('item', onItem)
        resolve(item)
      }
      this.#added.on('item', onItem)
    })
  }
}
