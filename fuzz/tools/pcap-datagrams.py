"""Writes the UDP payloads to PORT in a pcap (tcpdump -w, loopback) as seed files of the
datagrams target, and the same payloads RFC 4571-framed as seeds of the ice_tcp target."""
import struct, sys, os
pcap, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(pcap, 'rb').read()
magic = struct.unpack('<I', data[:4])[0]
endian = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
linktype = struct.unpack(endian + 'I', data[20:24])[0]
off, n, kinds = 24, 0, {}
os.makedirs(os.path.join(out, 'datagrams'), exist_ok=True)
os.makedirs(os.path.join(out, 'ice_tcp'), exist_ok=True)
while off + 16 <= len(data) and n < 400:
    _, _, incl, _ = struct.unpack(endian + 'IIII', data[off:off + 16])
    pkt = data[off + 16: off + 16 + incl]
    off += 16 + incl
    ip = pkt[14:] if linktype == 1 else pkt[16:] if linktype == 113 else pkt[4:]
    if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    sport, dport = struct.unpack('>HH', ip[ihl:ihl + 4])
    if dport != port:
        continue
    payload = ip[ihl + 8:]
    b = payload[0] if payload else 0
    kind = 'stun' if b < 4 else 'dtls' if 20 <= b <= 63 else 'rtcp' if 128 <= b <= 191 and len(payload) > 1 and 192 <= payload[1] <= 223 else 'rtp' if 128 <= b <= 191 else 'other'
    if kinds.get(kind, 0) >= 40:
        continue
    kinds[kind] = kinds.get(kind, 0) + 1
    open(os.path.join(out, 'datagrams', f'{kind}-{n:03d}'), 'wb').write(payload)
    open(os.path.join(out, 'ice_tcp', f'{kind}-{n:03d}'), 'wb').write(struct.pack('>H', len(payload)) + payload)
    n += 1
print('datagrams by kind:', kinds)
