import t from 'tap';
import { BindingCache } from '../../src/protocol/binding-cache.js';
import {
  limitToHomePrefixLifetime,
  processHomeBindingUpdate,
  type HomeAgentRegistrationConfig,
  type HomeRegistrationInput,
  type RegistrationPeer,
} from '../../src/protocol/home-agent-registration.js';
import {
  bindingUpdateFlags,
  type BindingUpdate,
  type MobilityOption,
} from '../../src/wire/types.js';

const HA = '2001:db8:100::1';
const HOA = '2001:db8:100::5';
const OTHER_HOA = '2001:db8:100::9';
const CONFIG: HomeAgentRegistrationConfig = {
  homePrefix: '2001:db8:100::/64',
  homeAgentAddress: HA,
  maxLifetimeSeconds: 600,
  natKeepaliveSeconds: 25,
  maxBindings: 10,
};
/** Static keys of the members' channels (binding owners). */
const LAPTOP_KEY = new Uint8Array(32).fill(0x11);
const PHONE_KEY = new Uint8Array(32).fill(0x22);
const laptop: RegistrationPeer = {
  name: 'laptop',
  publicKey: LAPTOP_KEY,
  allowsHomeAddress: (h) => h === HOA,
};
const phone: RegistrationPeer = {
  name: 'phone',
  publicKey: PHONE_KEY,
  allowsHomeAddress: (h) => h === OTHER_HOA,
};

function bu(
  sequence: number,
  lifetimeUnits: number,
  options: MobilityOption[],
  flags: Partial<BindingUpdate['flags']> = {},
): BindingUpdate {
  return {
    kind: 'bindingUpdate',
    sequence,
    lifetimeUnits,
    options,
    flags: bindingUpdateFlags({ A: true, H: true, ...flags }),
  };
}

/** An RFC 5555 BU over IPv4: inner src = HoA, IPv4 CoA option. */
function v4Input(
  sequence: number,
  opts: {
    coa?: string;
    observed?: string;
    port?: number;
    lifetimeUnits?: number;
    hoa?: string;
    peer?: RegistrationPeer;
    config?: Partial<HomeAgentRegistrationConfig>;
    flags?: Partial<BindingUpdate['flags']>;
    extra?: MobilityOption[];
  } = {},
): HomeRegistrationInput {
  const coa = opts.coa ?? '198.51.100.7';
  return {
    bu: bu(
      sequence,
      opts.lifetimeUnits ?? 150,
      [{ type: 'ipv4CareOfAddress', address: coa }, ...(opts.extra ?? [])],
      opts.flags,
    ),
    innerSource: opts.hoa ?? HOA,
    innerDestination: HA,
    locator: { address: opts.observed ?? coa, port: opts.port ?? 4191 },
    peer: opts.peer ?? laptop,
    config: { ...CONFIG, ...opts.config },
  };
}

/** An RFC 6275 BU over IPv6: inner src = CoA, HAO = HoA, Alternate CoA option. */
function v6Input(sequence: number, coa: string, lifetimeUnits = 150): HomeRegistrationInput {
  return {
    bu: bu(sequence, lifetimeUnits, [{ type: 'alternateCareOfAddress', address: coa }]),
    innerSource: coa,
    innerDestination: HA,
    homeAddressOption: HOA,
    locator: { address: coa, port: 4191 },
    peer: laptop,
    config: CONFIG,
  };
}

void t.test('accepts an IPv4 registration (RFC 5555) and says where to send the BA', async (t) => {
  const cache = new BindingCache();
  const r = processHomeBindingUpdate(cache, v4Input(100), 1000);
  t.equal(r.action, 'ack');
  t.equal(r.change, 'created');
  t.equal(r.status, 0);
  t.equal(r.ack?.status, 0);
  t.equal(r.ack?.sequence, 100);
  t.equal(r.ack?.lifetimeUnits, 150);
  t.equal(r.ack?.flags.K, false);
  t.same(r.ack?.options, [], 'no NAT, no advice: no options');
  t.same(r.reply, {
    locator: { address: '198.51.100.7', port: 4191 },
    innerSource: HA,
    innerDestination: HOA,
  });
  const e = cache.get(HOA);
  t.ok(e);
  t.equal(e?.careOfAddress, '::ffff:198.51.100.7');
  t.equal(e?.lifetimeSeconds, 600);
  t.equal(e?.expiresAt, 1000 + 600_000);
  t.equal(e?.sequence, 100);
  t.equal(e?.peerName, 'laptop');
  t.equal(e?.natDetected, false);
});

void t.test('accepts an IPv6 registration (HAO + Alternate CoA) and follows a move', async (t) => {
  const cache = new BindingCache();
  const r1 = processHomeBindingUpdate(cache, v6Input(7, '2001:db8:5::20'), 0);
  t.equal(r1.change, 'created');
  t.equal(cache.get(HOA)?.careOfAddress, '2001:db8:5::20');
  t.equal(r1.reply?.innerDestination, HOA, 'BA inner dst is the HoA, no RH2 inside the tunnel');
  const r2 = processHomeBindingUpdate(cache, v6Input(8, '2001:db8:6::30'), 10);
  t.equal(r2.change, 'updated');
  t.same(r2.previousLocator, { address: '2001:db8:5::20', port: 4191 });
  t.same(cache.get(HOA)?.locator, { address: '2001:db8:6::30', port: 4191 });
  t.equal(cache.size, 1);
});

void t.test('lifetime is capped at the configured max; refresh advice when shorter', async (t) => {
  const cache = new BindingCache();
  const r = processHomeBindingUpdate(
    cache,
    v4Input(1, {
      lifetimeUnits: 1000,
      config: { maxLifetimeSeconds: 300, refreshAdviceSeconds: 120 },
    }),
    0,
  );
  t.equal(r.ack?.lifetimeUnits, 75, '300 s');
  t.same(r.ack?.options, [{ type: 'bindingRefreshAdvice', refreshInterval: 30 }]);
  const r2 = processHomeBindingUpdate(
    cache,
    v4Input(2, { lifetimeUnits: 20, config: { refreshAdviceSeconds: 120 } }),
    0,
  );
  t.equal(r2.ack?.lifetimeUnits, 20, 'asked less than the max: granted as asked');
  t.same(r2.ack?.options, [], 'advice not shorter than the lifetime: omitted');
});

void t.test(
  'NAT detection (RFC 5555): IPv4 CoA option differs from the observed address',
  async (t) => {
    const cache = new BindingCache();
    const r = processHomeBindingUpdate(
      cache,
      v4Input(1, { coa: '192.0.2.10', observed: '203.0.113.9', port: 40000 }),
      0,
    );
    t.equal(r.status, 0);
    t.same(r.ack?.options, [
      { type: 'natDetection', udpEncapsulationRequired: false, refreshTime: 25 },
    ]);
    const e = cache.get(HOA);
    t.equal(e?.natDetected, true);
    t.equal(e?.careOfAddress, '::ffff:192.0.2.10', 'CoA field keeps what the MN sent');
    t.same(
      e?.locator,
      { address: '203.0.113.9', port: 40000 },
      'tunnel endpoint is the observed address and port',
    );
    t.equal(e?.refreshTime, 25);
    t.same(r.reply?.locator, { address: '203.0.113.9', port: 40000 });
    void t.test('forceUdp sets F even without NAT', async (t) => {
      const c = new BindingCache();
      const r2 = processHomeBindingUpdate(c, v4Input(1, { config: { forceUdp: true } }), 0);
      t.same(r2.ack?.options, [
        { type: 'natDetection', udpEncapsulationRequired: true, refreshTime: 25 },
      ]);
      t.equal(c.get(HOA)?.natDetected, false);
      t.equal(c.get(HOA)?.udpEncapsulationRequired, true);
    });
    void t.test('an IPv4-mapped observed address compares as IPv4', async (t) => {
      const c = new BindingCache();
      const r2 = processHomeBindingUpdate(c, v4Input(1, { observed: '::ffff:198.51.100.7' }), 0);
      t.same(r2.ack?.options, []);
      t.equal(c.get(HOA)?.natDetected, false);
    });
    void t.test('no option when not NATed; IPv6 never', async (t) => {
      const c = new BindingCache();
      t.same(processHomeBindingUpdate(c, v4Input(1), 0).ack?.options, []);
      t.same(processHomeBindingUpdate(c, v6Input(2, '2001:db8:5::20'), 0).ack?.options, []);
    });
  },
);

void t.test('drops: H clear, RR options in a home registration', async (t) => {
  const cache = new BindingCache();
  const h0 = processHomeBindingUpdate(cache, v4Input(1, { flags: { H: false } }), 0);
  t.equal(h0.action, 'drop');
  t.equal(h0.code, 'notHomeRegistration');
  t.equal(h0.ack, undefined);
  const ni = processHomeBindingUpdate(
    cache,
    v4Input(1, { extra: [{ type: 'nonceIndices', homeNonceIndex: 1, careOfNonceIndex: 2 }] }),
    0,
  );
  t.equal(ni.action, 'drop');
  t.equal(ni.code, 'rrOptionsInHomeRegistration');
  const bad = processHomeBindingUpdate(
    cache,
    v4Input(1, {
      extra: [{ type: 'bindingAuthorizationData', authenticator: new Uint8Array(12) }],
    }),
    0,
  );
  t.equal(bad.action, 'drop');
  t.equal(cache.size, 0);
  const elsewhere = processHomeBindingUpdate(
    cache,
    { ...v4Input(1), innerDestination: '2001:db8:100::77' },
    0,
  );
  t.equal(elsewhere.action, 'drop');
  t.equal(elsewhere.code, 'notAddressedToHomeAgent');
  t.throws(
    () => processHomeBindingUpdate(cache, v4Input(1, { config: { homePrefix: 'nope' } }), 0),
    'bad config is a programmer error',
  );
  const junk = processHomeBindingUpdate(cache, { ...v4Input(1), innerSource: 'zzz' }, 0);
  t.equal(junk.action, 'drop');
  t.equal(junk.code, 'badAddress');
});

void t.test('132: home address not on the home prefix', async (t) => {
  const r = processHomeBindingUpdate(
    new BindingCache(),
    v4Input(1, {
      hoa: '2001:db8:999::5',
      peer: { name: 'x', publicKey: PHONE_KEY, allowsHomeAddress: () => true },
    }),
    0,
  );
  t.equal(r.status, 132);
  t.equal(r.ack?.status, 132);
  t.equal(r.ack?.lifetimeUnits, 0);
});

void t.test('129: member not allowed to register (policy)', async (t) => {
  const r = processHomeBindingUpdate(
    new BindingCache(),
    v4Input(1, { peer: { ...laptop, allowsHomeRegistration: false } }),
    0,
  );
  t.equal(r.status, 129);
});

void t.test("133: a BU for another member's home address is rejected", async (t) => {
  const cache = new BindingCache();
  processHomeBindingUpdate(
    cache,
    v4Input(500, { hoa: OTHER_HOA, peer: phone, coa: '198.51.100.50' }),
    0,
  );
  const before = { ...cache.get(OTHER_HOA)! };
  // The laptop tries to steal the phone's HoA, with an old sequence number: it gets 133, not 135
  // (which would leak the phone's sequence), and the phone's binding is untouched.
  const r = processHomeBindingUpdate(
    cache,
    v4Input(3, { hoa: OTHER_HOA, peer: laptop, coa: '203.0.113.66' }),
    5,
  );
  t.equal(r.status, 133);
  t.equal(r.ack?.sequence, 3, "echoes the BU sequence, not the owner's");
  t.equal(r.change, 'none');
  t.same(cache.get(OTHER_HOA)?.locator, before.locator);
  t.equal(cache.get(OTHER_HOA)?.sequence, 500);
});

void t.test('139: existing binding of another registration type', async (t) => {
  const cache = new BindingCache();
  processHomeBindingUpdate(cache, v4Input(1), 0);
  const e = cache.get(HOA)!;
  cache.set(
    {
      ...e,
      homeAddress: e.homeAddress,
      careOfAddress: e.careOfAddress,
      expiresAt: e.expiresAt,
      homeRegistration: false,
      flags: { ...e.flags, H: false },
    },
    0,
  );
  const r = processHomeBindingUpdate(cache, v4Input(2), 1);
  t.equal(r.status, 139);
  void t.test('checked before the sequence window', async (t) => {
    const r2 = processHomeBindingUpdate(cache, v4Input(1), 1);
    t.equal(r2.status, 139);
  });
});

void t.test('140: mobile router registration is not offered', async (t) => {
  t.equal(
    processHomeBindingUpdate(new BindingCache(), v4Input(1, { flags: { R: true } }), 0).status,
    140,
  );
});

void t.test(
  '135: sequence out of window carries the last accepted sequence; a replay is rejected',
  async (t) => {
    const cache = new BindingCache();
    const first = v4Input(65535);
    t.equal(processHomeBindingUpdate(cache, first, 0).status, 0);
    const replay = processHomeBindingUpdate(cache, first, 100);
    t.equal(replay.status, 135, 'the very same BU again');
    t.equal(replay.ack?.sequence, 65535);
    t.equal(replay.change, 'none');
    t.equal(processHomeBindingUpdate(cache, v4Input(65535 - 100), 100).status, 135, 'older');
    t.equal(
      processHomeBindingUpdate(cache, v4Input(32767 + 65535 - 65536 + 1), 100).status,
      135,
      'opposite point is old',
    );
    const wrapped = processHomeBindingUpdate(cache, v4Input(0), 200);
    t.equal(wrapped.status, 0, '0 is newer than 65535');
    t.equal(cache.get(HOA)?.sequence, 0);
    void t.test('a replay after deregistration does not resurrect the binding', async (t) => {
      t.equal(
        processHomeBindingUpdate(cache, v4Input(1, { lifetimeUnits: 0 }), 300).change,
        'deleted',
      );
      const again = processHomeBindingUpdate(cache, v4Input(0), 400);
      t.equal(again.status, 135);
      t.equal(again.ack?.sequence, 1);
      t.equal(cache.size, 0);
    });
  },
);

void t.test('deregistration', async (t) => {
  const cache = new BindingCache();
  const none = processHomeBindingUpdate(cache, v4Input(1, { lifetimeUnits: 0 }), 0);
  t.equal(none.status, 133, 'no binding: 133 (UMIP)');
  t.equal(none.code, 'deregistrationWithoutBinding');
  processHomeBindingUpdate(cache, v4Input(2), 0);
  const r = processHomeBindingUpdate(cache, v4Input(3, { lifetimeUnits: 0 }), 10);
  t.equal(r.status, 0);
  t.equal(r.change, 'deleted');
  t.equal(r.entry?.homeAddress, HOA);
  t.equal(r.ack?.lifetimeUnits, 0);
  t.equal(cache.size, 0);
  void t.test(
    'CoA == HoA (returning home) on the home link is a deregistration whatever the lifetime',
    async (t) => {
      const c = new BindingCache();
      processHomeBindingUpdate(c, v6Input(10, '2001:db8:5::20'), 0);
      const home: HomeRegistrationInput = {
        bu: bu(11, 150, []),
        innerSource: HOA,
        innerDestination: HA,
        locator: { address: 'fe80::5%2', port: 4191 },
        onHomeLink: true,
        peer: laptop,
        config: CONFIG,
      };
      const r2 = processHomeBindingUpdate(c, home, 5);
      t.equal(r2.change, 'deleted');
      t.equal(r2.status, 0);
      t.equal(c.size, 0);
    },
  );
});

void t.test('returning home must arrive on the home link (issue #13)', async (t) => {
  // CoA == HoA: no options and no HAO (the MN's own returning-home BU), or an Alternate
  // Care-of Address option naming the HoA; lifetime 0 or not.
  const homeBu = (seq: number, o: { lifetime?: number; alt?: boolean; onHomeLink?: boolean }) =>
    ({
      bu: bu(seq, o.lifetime ?? 0, o.alt ? [{ type: 'alternateCareOfAddress', address: HOA }] : []),
      innerSource: HOA,
      innerDestination: HA,
      locator: { address: '2001:db8:77::9', port: 40000 },
      ...(o.onHomeLink !== undefined ? { onHomeLink: o.onHomeLink } : {}),
      peer: laptop,
      config: CONFIG,
    }) satisfies HomeRegistrationInput;
  const cache = new BindingCache();
  processHomeBindingUpdate(cache, v4Input(1), 0);
  const entry = cache.get(HOA)!;
  const before = { ...entry, expiresAt: entry.expiresAt };
  for (const [name, input] of [
    ['lifetime 0, not on the link', homeBu(2, {})],
    ['lifetime 0, onHomeLink false', homeBu(3, { onHomeLink: false })],
    ['lifetime 600, not on the link', homeBu(4, { lifetime: 150 })],
    ['Alternate CoA = HoA, not on the link', homeBu(5, { alt: true, lifetime: 150 })],
  ] as const) {
    const r = processHomeBindingUpdate(cache, input, 10);
    t.equal(r.status, 129, `${name}: 129 administratively prohibited`);
    t.equal(r.code, 'homeNotOnLink', name);
    t.equal(r.change, 'none', name);
    t.equal(r.ack?.sequence, input.bu.sequence, `${name}: the BA answers that BU`);
    t.same(r.reply?.locator, input.locator, `${name}: answered where it came from`);
  }
  const after = cache.get(HOA)!;
  t.equal(after.sequence, before.sequence, 'binding untouched: sequence');
  t.same(after.locator, before.locator, 'binding untouched: locator');
  t.equal(after.expiresAt, before.expiresAt, 'binding untouched: lifetime');
  t.equal(
    processHomeBindingUpdate(cache, v4Input(6, { lifetimeUnits: 0 }), 20).status,
    0,
    'an ordinary deregistration (CoA elsewhere) needs no link: still 0',
  );
  const ok = processHomeBindingUpdate(cache, homeBu(7, { onHomeLink: true }), 30);
  t.match(ok, { status: 0, change: 'none', code: 'deregistered' }, 'no binding, on the link: 0');
  t.equal(ok.ack?.lifetimeUnits, 0);
  processHomeBindingUpdate(cache, v4Input(8), 40);
  const gone = processHomeBindingUpdate(cache, homeBu(9, { onHomeLink: true, alt: true }), 50);
  t.match(gone, { status: 0, change: 'deleted' }, 'binding, on the link: deleted, 0');
  t.equal(cache.size, 0);
  void t.test('on the link, the other checks still come first', async (t) => {
    const c = new BindingCache();
    processHomeBindingUpdate(c, v4Input(1), 0);
    const stranger = {
      ...homeBu(2, { onHomeLink: true }),
      peer: { ...laptop, publicKey: PHONE_KEY },
    };
    t.equal(processHomeBindingUpdate(c, stranger, 1).code, 'bindingOwnerMismatch');
    const stale = homeBu(1, { onHomeLink: true });
    t.equal(processHomeBindingUpdate(c, stale, 2).status, 135, 'an old sequence: 135');
    t.equal(c.size, 1);
  });
});

void t.test('174: unusable care-of addresses', async (t) => {
  const cases: [string, MobilityOption][] = [
    ['unspecified', { type: 'alternateCareOfAddress', address: '::' }],
    ['loopback', { type: 'alternateCareOfAddress', address: '::1' }],
    ['multicast', { type: 'alternateCareOfAddress', address: 'ff02::1' }],
    ['link-local', { type: 'alternateCareOfAddress', address: 'fe80::1' }],
    ['the HA itself', { type: 'alternateCareOfAddress', address: HA }],
    ['on the home prefix', { type: 'alternateCareOfAddress', address: '2001:db8:100::77' }],
    ['IPv4 0.0.0.0', { type: 'ipv4CareOfAddress', address: '0.0.0.0' }],
    ['IPv4 loopback', { type: 'ipv4CareOfAddress', address: '127.0.0.1' }],
    ['IPv4 multicast', { type: 'ipv4CareOfAddress', address: '224.0.0.1' }],
    ['IPv4 broadcast', { type: 'ipv4CareOfAddress', address: '255.255.255.255' }],
  ];
  for (const [name, opt] of cases) {
    const input: HomeRegistrationInput = { ...v6Input(1, '2001:db8:5::20'), bu: bu(1, 150, [opt]) };
    const r = processHomeBindingUpdate(new BindingCache(), input, 0);
    t.equal(r.status, 174, name);
  }
  const priv = processHomeBindingUpdate(
    new BindingCache(),
    v4Input(1, { coa: '10.1.2.3', observed: '203.0.113.9' }),
    0,
  );
  t.equal(priv.status, 0, 'a private IPv4 CoA behind NAT is fine');
});

void t.test('130: binding cache full (refresh of an existing binding still works)', async (t) => {
  const cache = new BindingCache();
  const any: RegistrationPeer = {
    name: 'any',
    publicKey: LAPTOP_KEY,
    allowsHomeAddress: () => true,
  };
  for (let i = 0; i < 3; i++) {
    t.equal(
      processHomeBindingUpdate(
        cache,
        v4Input(1, { hoa: `2001:db8:100::${10 + i}`, peer: any, config: { maxBindings: 3 } }),
        0,
      ).status,
      0,
    );
  }
  t.equal(
    processHomeBindingUpdate(
      cache,
      v4Input(1, { hoa: '2001:db8:100::20', peer: any, config: { maxBindings: 3 } }),
      0,
    ).status,
    130,
  );
  t.equal(
    processHomeBindingUpdate(
      cache,
      v4Input(2, { hoa: '2001:db8:100::10', peer: any, config: { maxBindings: 3 } }),
      0,
    ).status,
    0,
  );
});

void t.test('the order of checks: an earlier check wins', async (t) => {
  const cache = new BindingCache();
  processHomeBindingUpdate(cache, v4Input(10), 0);
  // Off-prefix + not allowed -> 132 first.
  t.equal(processHomeBindingUpdate(cache, v4Input(1, { hoa: '2001:db8:999::5' }), 0).status, 132);
  // Old sequence + unusable CoA -> 135 before 174.
  t.equal(processHomeBindingUpdate(cache, v4Input(5, { coa: '127.0.0.1' }), 0).status, 135);
  // Deregistration with a bad CoA is still a deregistration.
  t.equal(
    processHomeBindingUpdate(cache, v4Input(11, { coa: '127.0.0.1', lifetimeUnits: 0 }), 0).change,
    'deleted',
  );
  // Full cache + bad CoA -> 174 before 130.
  t.equal(
    processHomeBindingUpdate(
      cache,
      v4Input(20, { coa: '224.1.1.1', config: { maxBindings: 0 } }),
      0,
    ).status,
    174,
  );
  t.equal(
    processHomeBindingUpdate(cache, v4Input(21, { config: { maxBindings: 0 } }), 0).status,
    130,
  );
});

// ---- binding ownership (issue #13): a binding belongs to the key that created it ----------

/** The laptop's replacement: a second certificate for the same home address, another key. */
const oldLaptop: RegistrationPeer = {
  name: 'old-laptop',
  publicKey: new Uint8Array(32).fill(0x33),
  allowsHomeAddress: (h) => h === HOA,
};
/** An `mn` certificate for the whole home prefix. */
const prefixHolder: RegistrationPeer = {
  name: 'prefix-mn',
  publicKey: new Uint8Array(32).fill(0x44),
  allowsHomeAddress: () => true,
};

void t.test(
  '129: a BU from another key for an existing binding changes nothing (next sequence too)',
  async (t) => {
    for (const thief of [oldLaptop, prefixHolder]) {
      await t.test(thief.name, async (t) => {
        const cache = new BindingCache();
        t.equal(processHomeBindingUpdate(cache, v4Input(500), 0).status, 0);
        const before = structuredClone(cache.get(HOA)!);
        // Read through getters (not own fields, so not in the clone): checked by value below.
        const careOfBefore = cache.get(HOA)!.careOfAddress;
        const expiresBefore = cache.get(HOA)!.expiresAt;
        const homeBefore = cache.get(HOA)!.homeAddress;
        // The attacker knows (or guesses) the owner's sequence and sends the next one, from
        // its own locator, as an update and as a deregistration.
        for (const lifetimeUnits of [150, 0]) {
          const r = processHomeBindingUpdate(
            cache,
            v4Input(501, { peer: thief, coa: '203.0.113.66', lifetimeUnits }),
            1000,
          );
          t.equal(r.status, 129, `lifetime ${lifetimeUnits}: administratively prohibited`);
          t.equal(r.code, 'bindingOwnerMismatch');
          t.equal(r.change, 'none');
          t.equal(r.ack?.sequence, 501, "echoes the BU's sequence, not the owner's");
          t.equal(r.ack?.lifetimeUnits, 0);
          t.same(r.reply?.locator, { address: '203.0.113.66', port: 4191 }, 'BA to the sender');
        }
        t.same(cache.get(HOA), before, 'entry untouched: locator, sequence, owner, expiry');
        t.equal(cache.get(HOA)?.careOfAddress, careOfBefore, 'and its care-of address');
        t.equal(cache.get(HOA)?.expiresAt, expiresBefore, 'and its expiry');
        t.equal(cache.get(HOA)?.homeAddress, homeBefore, 'and its home address');
        t.not(careOfBefore, '203.0.113.66');
        t.same(cache.get(HOA)?.ownerKey, LAPTOP_KEY);
        t.equal(cache.size, 1);
        // Ownership is checked before the sequence (no 135 leaking the owner's sequence) and
        // before the registration type (no 139).
        const old = processHomeBindingUpdate(cache, v4Input(3, { peer: thief }), 1000);
        t.equal(old.status, 129);
        t.equal(old.ack?.sequence, 3);
        // The owner carries on with its own next sequence.
        t.equal(processHomeBindingUpdate(cache, v4Input(501), 2000).status, 0);
      });
    }
  },
);

void t.test('the entry records its owner; the owner alone moves it', async (t) => {
  const cache = new BindingCache();
  processHomeBindingUpdate(cache, v6Input(7, '2001:db8:5::20'), 0);
  t.same(cache.get(HOA)?.ownerKey, LAPTOP_KEY);
  const moved = processHomeBindingUpdate(cache, v6Input(8, '2001:db8:6::30'), 10);
  t.equal(moved.change, 'updated');
  t.same(cache.get(HOA)?.ownerKey, LAPTOP_KEY);
});

void t.test(
  'the address is free again after the owner deregisters or the entry expires',
  async (t) => {
    await t.test('deregistered by its owner', async (t) => {
      const cache = new BindingCache();
      processHomeBindingUpdate(cache, v4Input(500), 0);
      t.equal(
        processHomeBindingUpdate(cache, v4Input(501, { lifetimeUnits: 0 }), 10).change,
        'deleted',
      );
      // The old laptop's sequence space has nothing to do with the deleted entry's: it is not
      // held to the owner's tombstone (and does not learn its sequence from a 135).
      const r = processHomeBindingUpdate(
        cache,
        v4Input(3, { peer: oldLaptop, coa: '203.0.113.66' }),
        20,
      );
      t.equal(r.status, 0);
      t.equal(r.change, 'created');
      t.same(cache.get(HOA)?.ownerKey, oldLaptop.publicKey);
      t.equal(cache.get(HOA)?.peerName, 'old-laptop');
      // Now the first laptop is the stranger.
      t.equal(processHomeBindingUpdate(cache, v4Input(502), 30).status, 129);
    });
    await t.test('expired', async (t) => {
      const cache = new BindingCache();
      processHomeBindingUpdate(cache, v4Input(500, { config: { maxLifetimeSeconds: 40 } }), 0);
      t.equal(
        processHomeBindingUpdate(cache, v4Input(9, { peer: prefixHolder }), 1000).status,
        129,
      );
      const actions = cache.poll(40_000);
      t.same(
        actions.map((a) => a.kind),
        ['expired'],
      );
      const r = processHomeBindingUpdate(cache, v4Input(9, { peer: prefixHolder }), 40_001);
      t.equal(r.status, 0, 'another key may register the free address');
      t.same(cache.get(HOA)?.ownerKey, prefixHolder.publicKey);
    });
    await t.test("the owner's own tombstone still stops its replays", async (t) => {
      const cache = new BindingCache();
      processHomeBindingUpdate(cache, v4Input(500), 0);
      processHomeBindingUpdate(cache, v4Input(501, { lifetimeUnits: 0 }), 10);
      const replay = processHomeBindingUpdate(cache, v4Input(500), 20);
      t.equal(replay.status, 135);
      t.equal(replay.ack?.sequence, 501);
    });
  },
);

void t.test(
  'granted lifetime never exceeds the home prefix valid lifetime (§10.3.1)',
  async (t) => {
    const cache = new BindingCache();
    // Requested 150 units (600 s), max 600 s, prefix valid 100 s: 25 units (100 s).
    const r = processHomeBindingUpdate(
      cache,
      v4Input(1, { config: { homePrefixValidLifetimeSeconds: 100 } }),
      0,
    );
    t.equal(r.ack?.lifetimeUnits, 25);
    t.equal(cache.get(HOA)?.expiresAt, 100_000);
    // Infinite (all ones) or absent: the other limits only.
    const c2 = new BindingCache();
    const inf = processHomeBindingUpdate(
      c2,
      v4Input(1, { config: { homePrefixValidLifetimeSeconds: 0xffff_ffff } }),
      0,
    );
    t.equal(inf.ack?.lifetimeUnits, 150);
    // A prefix no longer valid (0, or less than one 4 s unit): BA 132, nothing installed.
    for (const valid of [0, 3]) {
      const c3 = new BindingCache();
      const gone = processHomeBindingUpdate(
        c3,
        v4Input(1, { config: { homePrefixValidLifetimeSeconds: valid } }),
        0,
      );
      t.equal(gone.status, 132, `valid ${valid} s: not home subnet`);
      t.equal(gone.code, 'homePrefixExpired');
      t.equal(c3.size, 0);
    }
  },
);

void t.test(
  'a reload shortens bindings past the prefix lifetime, and 0 removes them',
  async (t) => {
    const cache = new BindingCache();
    const created = processHomeBindingUpdate(cache, v4Input(1), 0); // 600 s
    const short = limitToHomePrefixLifetime(cache, 0xffff_ffff, 1000);
    t.same(short, { shortened: [], removed: [] }, 'infinite: untouched');
    const r = limitToHomePrefixLifetime(cache, 60, 1000);
    t.equal(r.shortened.length, 1);
    t.equal(cache.get(HOA)?.expiresAt, 61_000, 'ends with the prefix');
    // The same object: a BA waiting for this binding's DAD (it compares identity) still finds it.
    t.equal(cache.get(HOA), created.entry, 'shortened in place');
    t.equal(cache.nextDeadline() <= 61_000, true, 'timer re-armed');
    t.same(limitToHomePrefixLifetime(cache, 600, 2000).shortened, [], 'never lengthened');
    const gone = limitToHomePrefixLifetime(cache, 0, 3000);
    t.equal(gone.removed.length, 1);
    t.equal(cache.size, 0, 'removed');
    t.equal(cache.tombstoneSequence(HOA, 3000), 1, 'tombstone kept: no replay resurrects it');
  },
);

void t.test('A = 0: accepted silently (no BA), rejections still answered (§10.3.1)', async (t) => {
  const cache = new BindingCache();
  const ok = processHomeBindingUpdate(cache, v4Input(1, { flags: { A: false } }), 0);
  t.equal(ok.action, 'silent');
  t.equal(ok.ack, undefined);
  t.equal(ok.change, 'created', 'the binding is still made');
  const dereg = processHomeBindingUpdate(
    cache,
    v4Input(2, { flags: { A: false }, lifetimeUnits: 0 }),
    10,
  );
  t.equal(dereg.action, 'silent');
  t.equal(dereg.change, 'deleted');
  const refused = processHomeBindingUpdate(
    cache,
    v4Input(3, { flags: { A: false }, hoa: OTHER_HOA }),
    20,
  );
  t.equal(refused.action, 'ack', 'a rejected BU gets its BA even with A = 0');
  t.equal(refused.status, 133);
});

void t.test(
  "a refresh keeps the binding's locator object only when address, port and our address match",
  async (t) => {
    // A multi-homed HA (issue #16): the same member locator reaching another of our addresses
    // must give the binding a new locator object carrying that address, or the BA would leave
    // from the old one; a plain refresh keeps the object (issue 17: no copy per BU).
    const cache = new BindingCache();
    const at = (local: string | undefined, seq: number): HomeRegistrationInput => {
      const input = v4Input(seq);
      return { ...input, locator: { ...input.locator, ...(local ? { local } : {}) } };
    };
    processHomeBindingUpdate(cache, at('192.0.2.1', 1), 0);
    const first = cache.get(HOA)!.locator;
    t.same(first, { address: '198.51.100.7', port: 4191, local: '192.0.2.1' });
    processHomeBindingUpdate(cache, at('192.0.2.1', 2), 10);
    t.equal(cache.get(HOA)!.locator, first, 'a refresh at the same address keeps the object');
    const moved = processHomeBindingUpdate(cache, at('192.0.2.2', 3), 20);
    const now = cache.get(HOA)!.locator;
    t.not(now, first, 'another of our addresses: a new object');
    t.same(now, { address: '198.51.100.7', port: 4191, local: '192.0.2.2' });
    t.equal(first.local, '192.0.2.1', 'the old object was not changed in place');
    t.equal(moved.change, 'updated', 'a change of our address is an update, not a plain refresh');
    processHomeBindingUpdate(cache, at(undefined, 4), 30);
    t.equal(cache.get(HOA)!.locator.local, undefined, 'no local address known: none kept');
  },
);
