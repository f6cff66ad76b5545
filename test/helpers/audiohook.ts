/**
 * The open of Genesys's protocol reference
 * (https://developer.genesys.cloud/devapps/audiohook/session-walkthrough#open-transaction), with the session,
 * organization, conversation and offered media a test gives.
 */
export function audioHookOpen (id: string, organizationId: string, conversationId: string, media: unknown[]): Record<string, unknown> {
  return {
    version: '2',
    type: 'open',
    seq: 1,
    serverseq: 0,
    id,
    position: 'PT0S',
    parameters: {
      organizationId,
      conversationId,
      participant: { id: '883efee8-3d6c-4537-b500-6d7ca4b92fa0', ani: '+1-555-555-1234', aniName: 'John Doe', dnis: '+1-800-555-6789' },
      media,
      language: 'en-US'
    }
  }
}
