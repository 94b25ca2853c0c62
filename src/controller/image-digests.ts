// What the pulls of this manager found: for each image reference, the image id (and
// registry digest) the tag pointed to at its last pull. imagePullPolicy Always compares a
// plugin's container with it: a new push under the same tag is a new image id, so a
// change of the spec (field `imageId`), and only a changed id is one.
//
// In memory only: after a restart nothing is known until the next pull, and until then a
// container is taken to run the wanted image (see wantedImage). The image poller pulls
// each Always image at start and every IMAGE_POLL_INTERVAL.
import type { EnsuredImage, ObservedContainer } from '../runtime/container-runtime.js'
import { SPEC_FIELDS_LABEL, type WantedImage } from '../spec/container-spec.js'

export interface PulledImage {
  imageId: string
  digest?: string
  /** When the pull finished (the clock's ms). */
  pulledAt: number
}

export class ImageDigests {
  private readonly byReference = new Map<string, PulledImage>()
  private readonly digestById = new Map<string, string>()

  /** A pull's result; answers whether the reference now names another image than before (or the first one known). */
  record(reference: string, ensured: Pick<EnsuredImage, 'imageId' | 'digest'>, at: number): boolean {
    const before = this.byReference.get(reference)
    this.byReference.set(reference, { imageId: ensured.imageId, ...(ensured.digest ? { digest: ensured.digest } : {}), pulledAt: at })
    if (ensured.digest) this.digestById.set(ensured.imageId, ensured.digest)
    return before?.imageId !== ensured.imageId
  }

  latest(reference: string): PulledImage | undefined {
    return this.byReference.get(reference)
  }

  /** The registry digest of an image id some pull of this manager found. */
  digestOf(imageId: string): string | undefined {
    return this.digestById.get(imageId)
  }

  /** The image an Always plugin should run, given the container under its name. */
  wantedFor(reference: string, main: ObservedContainer | undefined): WantedImage {
    return wantedImage(reference, this.latest(reference), main, (imageId) => this.digestOf(imageId))
  }
}

/**
 * Which image an Always plugin should run (pure). Drift is "the last pull found another
 * image than the container runs", carried by the hashed `imageId` so that a rollout's
 * steps (which compare labels) see it like any other change:
 * - the container runs another reference, or there is none: no imageId (the change of
 *   `image`, or the create, is the change; its pull happens right before the create);
 * - nothing pulled yet (a restart): the container's own image is taken as wanted;
 * - the container runs the wanted image but was made without an imageId hash (before this
 *   field existed, or by a create that came before the first known pull): no imageId, so
 *   it keeps its hash and is not recreated;
 * - otherwise the pulled id, which differs from the container's hash exactly when the tag
 *   moved.
 */
export function wantedImage(reference: string, latest: Pick<PulledImage, 'imageId' | 'digest'> | undefined, main: ObservedContainer | undefined, digestOf: (imageId: string) => string | undefined): WantedImage {
  const running = main?.image === reference ? main : undefined
  const imageId = latest?.imageId ?? running?.imageId
  if (imageId === undefined) return {}
  const imageDigest = latest?.imageId === imageId && latest.digest ? latest.digest : digestOf(imageId)
  const recorded: WantedImage = imageDigest ? { imageDigest } : {}
  if (!running) return recorded
  if (running.imageId === imageId && !hasImageIdHash(running.labels)) return recorded
  return { imageId, ...recorded }
}

function hasImageIdHash(labels: Record<string, string>): boolean {
  return (labels[SPEC_FIELDS_LABEL] ?? '').split(',').some((pair) => pair.startsWith('imageId='))
}
