# The mip6 native addon (native/): N-API C, no dependency beyond node itself (OpenSSL comes
# from the node binary and its headers). npm runs `node-gyp rebuild` on install because this
# file exists. Platform code lives in platform-named files picked here.
{
  'targets': [
    {
      'target_name': 'mip6',
      'sources': ['native/mip6.c', 'native/aead.c'],
      'defines': ['NAPI_VERSION=8'],
      'cflags': ['-Wall', '-Wextra', '-O2', '-std=gnu11'],
      'conditions': [
        ['OS=="linux"', {'sources': ['native/tun_linux.c', 'native/vnet.c', 'native/udp.c', 'native/netlink_linux.c', 'native/ndisc_linux.c', 'native/ndproxy_linux.c', 'native/mld.c', 'native/privileges_linux.c', 'native/express.c']}],
      ],
    },
  ],
}
