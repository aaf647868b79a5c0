// Both APIs of the npm package, used as an application would; `tsc --strict --noEmit` must
// accept it (npm run typecheck), and the commented lines show what it must refuse.
import { OpenVidu, TokenOptions, OpenViduRole, startServer, CamerataError, type EmbeddedServer } from 'camerata';
import * as ov2 from 'camerata/openvidu-node-client';

export async function seed(server: EmbeddedServer): Promise<string> {
  const OV = new OpenVidu(server.url, server.secret);
  const session = OV.createSession({ customSessionId: 'typed' });
  session.getSessionId((sessionId, error) => {
    if (error instanceof CamerataError) console.error(error.status);
    if (sessionId !== undefined) console.log(sessionId.toUpperCase());
  });
  const options: TokenOptions = new TokenOptions.Builder().data('d').role(OpenViduRole.SUBSCRIBER).build();
  const builder: TokenOptions.Builder = new TokenOptions.Builder();
  builder.role('MODERATOR');
  session.generateToken(options, (token) => console.log(token));
  session.generateToken((token) => console.log(token));
  const id: string = await session.getSessionId();
  // @ts-expect-error a callback is not a TokenOptions
  session.generateToken('nope', () => {});
  return id + (await session.generateToken(options)) + options.getData() + options.getRole();
}

// The seed's own TypeScript, as its users write it: the callback takes the value only.
export function seedStrict(OV: OpenVidu): void {
  const session = OV.createSession();
  session.getSessionId((sessionId: string) => {
    const opts = new TokenOptions.Builder().data('user').role(OpenViduRole.PUBLISHER).build();
    session.generateToken(opts, (token: string) => {
      console.log(sessionId.length, token.toUpperCase());
    }).catch((e: unknown) => console.error(e instanceof CamerataError ? e.status : e));
  }).catch((e: unknown) => console.error(e));
  // @ts-expect-error the value is a string, not a number
  session.getSessionId((sessionId: number) => sessionId);
}

export async function promises(): Promise<number> {
  const server = await startServer({ dataDir: '/tmp/x' });
  const ov = new ov2.OpenVidu(server.url, server.secret);
  const s: ov2.Session = await ov.createSession({ mediaMode: ov2.MediaMode.ROUTED, customSessionId: 'x' });
  const c: ov2.Connection = await s.createConnection({ role: ov2.OpenViduRole.MODERATOR, data: 'd' });
  const t: string = await s.generateToken({ role: 'SUBSCRIBER' });
  const changed: boolean = await s.fetch();
  const recs: ov2.Recording[] = await ov.listRecordings().catch(() => []);
  await s.forceDisconnect(c);
  await s.close();
  await server.stop();
  return t.length + Number(changed) + recs.length + s.activeConnections.length;
}
