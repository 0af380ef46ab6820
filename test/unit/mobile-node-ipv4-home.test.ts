/**
 * The mobile node's side of an RFC 5555 IPv4 home address (issue #15), on the registration
 * engine with a fake clock: every home-registration BU carries the IPv4 Home Address option
 * (0.0.0.0 to ask for one, then the granted address), the BA's IPv4 Address Acknowledgement
 * grants or refuses it, and a refresh, a move and a deregistration followed by a new
 * registration keep asking for the same address; a refusal of it makes 'auto' ask afresh.
 */
import t from 'tap';
import {
  HomeRegistration,
  type HomeRegistrationAction,
} from '../../src/protocol/mobile-node-registration.js';
import type { BindingAcknowledgement, MobilityOption } from '../../src/wire/types.js';

const CONFIG = {
  homeAddress: '2001:db8:100::5',
  homeAgentAddress: '2001:db8:100::1',
  lifetimeSeconds: 600,
};
const V4 = { family: 4 as const, localAddress: '192.0.2.10' };
const V6 = { family: 6 as const, localAddress: '2001:db8:5::20' };
type Send = Extract<HomeRegistrationAction, { kind: 'sendBindingUpdate' }>;
type Registered = Extract<HomeRegistrationAction, { kind: 'registered' }>;

function ba(sequence: number, options: MobilityOption[], status = 0): BindingAcknowledgement {
  return {
    kind: 'bindingAcknowledgement',
    status,
    sequence,
    lifetimeUnits: status === 0 ? 150 : 0,
    options,
    flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
  };
}
const ack = (status: number, address: string): MobilityOption => ({
  type: 'ipv4AddressAcknowledgement',
  status,
  prefixLength: status < 128 ? 32 : 0,
  address,
});
const sendOf = (a: HomeRegistrationAction[]): Send =>
  a.find((x): x is Send => x.kind === 'sendBindingUpdate')!;
const registeredOf = (a: HomeRegistrationAction[]): Registered | undefined =>
  a.find((x): x is Registered => x.kind === 'registered');
const requested = (s: Send): string | undefined => {
  const o = s.message.options.find((x) => x.type === 'ipv4HomeAddress');
  return o?.type === 'ipv4HomeAddress' ? o.address : undefined;
};

void t.test('auto: ask with 0.0.0.0, then keep the granted address', async (t) => {
  const mn = new HomeRegistration({ ...CONFIG, ipv4HomeAddress: 'auto' }, 0, 100);
  const first = sendOf(mn.setCareOf(V4, 0));
  t.same(
    first.message.options.find((o) => o.type === 'ipv4HomeAddress'),
    { type: 'ipv4HomeAddress', prefixLength: 32, requestPrefix: false, address: '0.0.0.0' },
    'RFC 5555 §3.1.1: 0.0.0.0 asks the HA to assign one, /32',
  );
  const r = registeredOf(
    mn.onBindingAcknowledgement(ba(first.message.sequence, [ack(0, '10.99.0.2')]), 50),
  );
  t.equal(r?.homeAddress4, '10.99.0.2');
  t.equal(r?.ipv4Status, 0);
  t.equal(mn.homeAddress4, '10.99.0.2');
  t.equal(mn.status(60).homeAddress4, '10.99.0.2', 'status shows it');

  const move = sendOf(mn.setCareOf(V6, 1000));
  t.equal(requested(move), '10.99.0.2', 'a move asks for the same address');
  mn.onBindingAcknowledgement(ba(move.message.sequence, [ack(0, '10.99.0.2')]), 1050);
  let refresh: Send | undefined;
  for (let now = 1100; refresh === undefined && now < 600_000; now += 1000) {
    refresh = mn.poll(now).find((x): x is Send => x.kind === 'sendBindingUpdate');
  }
  t.equal(refresh?.reason, 'refresh');
  t.equal(requested(refresh!), '10.99.0.2', 'a refresh too');

  const dereg = sendOf(mn.deregister(400_000));
  t.equal(requested(dereg), undefined, 'a deregistration carries no IPv4 request');
  mn.onBindingAcknowledgement(ba(dereg.message.sequence, []), 400_050);
  t.equal(mn.homeAddress4, '10.99.0.2', 'remembered after deregistration');
  const again = sendOf(mn.setCareOf(V4, 500_000));
  t.equal(requested(again), '10.99.0.2', 'the next registration asks for it again');

  // The HA gave it to somebody else meanwhile: 130, and 'auto' asks afresh at once.
  const refusedActions = mn.onBindingAcknowledgement(
    ba(again.message.sequence, [ack(130, '10.99.0.2')]),
    500_050,
  );
  const refused = registeredOf(refusedActions);
  t.equal(refused?.homeAddress4, null, 'refused: no IPv4 home address');
  t.equal(refused?.ipv4Status, 130);
  // At once, or as soon as MAX_UPDATE_RATE allows (RFC 6275 §11.8): well before a refresh.
  const afresh =
    refusedActions.find((x): x is Send => x.kind === 'sendBindingUpdate') ??
    mn.poll(mn.nextDeadline()).find((x): x is Send => x.kind === 'sendBindingUpdate');
  t.ok(mn.nextDeadline() < 502_000 || afresh !== undefined, 'within a second or two');
  t.equal(afresh?.reason, 'refresh', 'a BU at once, not at the next refresh');
  t.equal(requested(afresh!), '0.0.0.0', 'auto asks for any address');
  const again2 = registeredOf(
    mn.onBindingAcknowledgement(ba(afresh!.message.sequence, [ack(0, '10.99.0.3')]), 500_100),
  );
  t.equal(again2?.homeAddress4, '10.99.0.3', 'and gets one');
});

void t.test('fixed address, an HA that ignores the option, and none configured', async (t) => {
  const fixed = new HomeRegistration({ ...CONFIG, ipv4HomeAddress: '10.99.0.50' }, 0, 1);
  const s = sendOf(fixed.setCareOf(V4, 0));
  t.equal(requested(s), '10.99.0.50');
  const r = registeredOf(fixed.onBindingAcknowledgement(ba(s.message.sequence, []), 10));
  t.equal(r?.homeAddress4, null, 'no acknowledgement: no IPv4 home address');
  t.equal(r?.ipv4Status, null);

  const plain = new HomeRegistration(CONFIG, 0, 1);
  const p = sendOf(plain.setCareOf(V4, 0));
  t.equal(requested(p), undefined, 'nothing asked when not configured');
  const pr = registeredOf(
    plain.onBindingAcknowledgement(ba(p.message.sequence, [ack(0, '10.99.0.9')]), 10),
  );
  t.equal(pr?.homeAddress4, null, 'an unasked acknowledgement is ignored');
});

void t.test('a successful BA without an acknowledgement drops a granted address', async (t) => {
  // Failover to an HA without an IPv4 pool: it registers us but routes no IPv4 home address.
  const mn = new HomeRegistration({ ...CONFIG, ipv4HomeAddress: 'auto' }, 0, 100);
  const first = sendOf(mn.setCareOf(V4, 0));
  mn.onBindingAcknowledgement(ba(first.message.sequence, [ack(0, '10.99.0.2')]), 50);
  t.equal(mn.homeAddress4, '10.99.0.2');
  const move = sendOf(mn.setCareOf(V6, 1000));
  t.equal(requested(move), '10.99.0.2');
  const r = registeredOf(mn.onBindingAcknowledgement(ba(move.message.sequence, []), 1050));
  t.equal(r?.homeAddress4, null, 'registered, but no IPv4 home address any more');
  t.equal(r?.ipv4Status, null);
  t.equal(mn.homeAddress4, null);
  t.equal(mn.status(1100).homeAddress4, null, 'status shows none');
  const next = sendOf(mn.setCareOf(V4, 2000));
  t.equal(requested(next), '0.0.0.0', 'the next BU asks for any address again');
  const back = registeredOf(
    mn.onBindingAcknowledgement(ba(next.message.sequence, [ack(0, '10.99.0.7')]), 2050),
  );
  t.equal(back?.homeAddress4, '10.99.0.7', 'an HA with a pool grants one again');
});
