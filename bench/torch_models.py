"""PyTorch peer of bench/models.ts: the same reference models, layer for layer (same
parameter counts, batch and data shapes, Adam settings), and the worker side of the
benchmark protocol that bench/run.ts drives.

Run by the harness as a child process (one per model and thread setting):
    /usr/bin/python3 bench/torch_models.py --case dcgan
It prints {"ready": true, "nParams": ..., ...} and then answers one JSON line per
command read from stdin:
    {"cmd": "run", "n": 3}  ->  {"ms": [step times], "out": [losses]}
    {"cmd": "mem"}          ->  {"hwmMb": peak RSS (VmHWM), "rssMb": current RSS}
    {"cmd": "exit"}
Thread settings come from the environment the harness sets (OPENBLAS_NUM_THREADS,
OMP_WAIT_POLICY); torch itself always runs torch.set_num_threads(2).

References: DCGAN https://arxiv.org/abs/1511.06434, VAE https://arxiv.org/abs/1312.6114,
GPT-2 / nanoGPT, RealNVP https://arxiv.org/abs/1605.08803, DDPM
https://arxiv.org/abs/2006.11239, DDIM https://arxiv.org/abs/2010.02502, NTM
https://arxiv.org/abs/1410.5401.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 1234


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def adam_step(opt, loss):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class Case:
    def __init__(self, n_params, items, unit, run):
        self.n_params = n_params
        self.items = items
        self.unit = unit
        self.run = run


def train_case(n, batch, step):
    return Case(n, batch, "samples", lambda: step().item())


# ---------------------------------------------------------------- dcgan

class DcganG(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 7 * 7 * 128)
        self.bn0 = nn.BatchNorm2d(128)
        self.up1 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.up2 = nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1)

    def forward(self, z):
        h = F.relu(self.bn0(self.fc(z).view(z.shape[0], 128, 7, 7)))
        h = F.relu(self.bn1(self.up1(h)))
        return torch.tanh(self.up2(h))


class DcganD(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 64, 4, stride=2, padding=1)
        self.c2 = nn.Conv2d(64, 128, 4, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(6272, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.c2(h)), 0.2)
        return self.fc(h.reshape(x.shape[0], 6272))


def dcgan():
    B = 64
    torch.manual_seed(SEED)
    G, D = DcganG(), DcganD()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(B, 1, 28, 28) * 2 - 1
    one, zero = torch.ones(B, 1), torch.zeros(B, 1)

    def step():
        torch.manual_seed(SEED + 1)
        fake = G(torch.randn(B, 64))
        loss_d = F.binary_cross_entropy_with_logits(D(real), one) + F.binary_cross_entropy_with_logits(D(fake.detach()), zero)
        adam_step(opt_d, loss_d)
        loss_g = F.binary_cross_entropy_with_logits(D(fake), one)
        adam_step(opt_g, loss_g)
        return loss_d

    return train_case(n_params(G, D), B, step)


# ---------------------------------------------------------------- conv-vae

class ConvVae(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(1, 32, 4, stride=2, padding=1)
        self.e2 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.e_fc = nn.Linear(3136, 2 * 16)
        self.d_fc = nn.Linear(16, 3136)
        self.d1 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.d2 = nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1)

    def loss(self, x):
        B = x.shape[0]
        h = F.relu(self.e2(F.relu(self.e1(x)))).reshape(B, 3136)
        mu, logvar = self.e_fc(h).chunk(2, 1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(B, 16)
        g = F.relu(self.d_fc(z)).view(B, 64, 7, 7)
        logits = self.d2(F.relu(self.d1(g)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / B
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        return rec + kl


def conv_vae():
    B = 128
    torch.manual_seed(SEED)
    m = ConvVae()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.rand(B, 1, 28, 28)

    def step():
        torch.manual_seed(SEED + 1)
        loss = m.loss(x)
        adam_step(opt, loss)
        return loss

    return train_case(n_params(m), B, step)


# ---------------------------------------------------------------- lstm-lm

class LstmLm(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(65, 128)
        self.lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, 65)

    def forward(self, ids):
        out, _ = self.lstm(self.emb(ids))
        return self.head(out)


def lstm_lm():
    B, T = 32, 128
    torch.manual_seed(SEED)
    m = LstmLm()
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    ids = torch.randint(0, 65, (B, T))
    targets = torch.randint(0, 65, (B * T,))

    def step():
        loss = F.cross_entropy(m(ids).reshape(B * T, 65), targets)
        adam_step(opt, loss)
        return loss

    return train_case(n_params(m), B, step)


# ---------------------------------------------------------------- gpt

GPT = dict(vocab_size=65, n_layer=4, n_head=4, d_model=128, block_size=128)


class GptBlock(nn.Module):
    """Pre-LN block; attention as nanoGPT's (packed qkv = MultiheadAttention's in_proj)."""

    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.n_head = c["n_head"]
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(c["block_size"], c["block_size"], dtype=torch.bool)), persistent=False)

    def attn(self, x, cache=None):
        B, T, C = x.shape
        nh, hd = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, nh, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, nh, hd).transpose(1, 2)
        v = v.view(B, T, nh, hd).transpose(1, 2)
        if cache is not None:
            if cache:
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        S = k.shape[2]
        att = (q * (1.0 / math.sqrt(hd))) @ k.transpose(-2, -1)  # (B, nh, T, S)
        if T > 1:
            att = att.masked_fill(~self.mask[S - T:S, :S], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c["vocab_size"], c["d_model"])
        self.wpe = nn.Embedding(c["block_size"], c["d_model"])
        self.h = nn.ModuleList([GptBlock(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["d_model"])
        nn.init.normal_(self.wte.weight, 0, 0.02)
        nn.init.normal_(self.wpe.weight, 0, 0.02)

    def forward(self, ids, pos0=0, caches=None):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(pos0, pos0 + T))
        for i, b in enumerate(self.h):
            x = b(x, caches[i] if caches is not None else None)
        return F.linear(self.ln_f(x), self.wte.weight)  # tied embeddings


def gpt():
    B, T = 32, GPT["block_size"]
    torch.manual_seed(SEED)
    m = Gpt(GPT)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    ids = torch.randint(0, 65, (B, T))
    targets = torch.randint(0, 65, (B * T,))

    def step():
        loss = F.cross_entropy(m(ids).reshape(B * T, GPT["vocab_size"]), targets)
        adam_step(opt, loss)
        return loss

    return train_case(n_params(m), B, step)


def gpt_sample():
    N = 256
    torch.manual_seed(SEED)
    m = Gpt(dict(GPT, block_size=N)).eval()

    def run():
        torch.manual_seed(SEED + 1)
        with torch.no_grad():
            caches = [[] for _ in m.h]
            tok = torch.zeros(1, 1, dtype=torch.long)
            for t in range(N):
                logits = m(tok, t, caches).reshape(1, GPT["vocab_size"])
                tok = torch.multinomial(F.softmax(logits, -1), 1)
        return float("nan")

    return Case(n_params(m), N, "tokens", run)


# ---------------------------------------------------------------- realnvp-2d

def mlp2(tanh_out):
    layers = [nn.Linear(2, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2)]
    return nn.Sequential(*(layers + [nn.Tanh()] if tanh_out else layers))


class RealNvp2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.s = nn.ModuleList([mlp2(True) for _ in range(8)])
        self.t = nn.ModuleList([mlp2(False) for _ in range(8)])
        self.register_buffer("masks", torch.tensor([[1.0, 0.0] if k % 2 == 0 else [0.0, 1.0] for k in range(8)]))

    def nll(self, x):
        log_det = 0
        for k in range(8):
            b = self.masks[k].view(1, 2)
            nb = 1 - b
            xm = x * b
            s = self.s[k](xm) * nb
            t = self.t[k](xm) * nb
            x = xm + nb * (x * torch.exp(s) + t)
            log_det = log_det + s.sum(1)
        log_pz = -0.5 * x.pow(2).sum(1) - math.log(2 * math.pi)
        return -(log_pz + log_det).mean()


def realnvp_2d():
    B = 512
    torch.manual_seed(SEED)
    m = RealNvp2d()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.randn(B, 2) * torch.tensor([[2.0, 0.5]]) + torch.tensor([[0.0, 1.0]])

    def step():
        loss = m.nll(x)
        adam_step(opt, loss)
        return loss

    return train_case(n_params(m), B, step)


# ---------------------------------------------------------------- ddpm-unet

TEMB = 128


def timestep_embedding(t):
    half = TEMB // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000) / half)).view(1, half)
    args = t.view(-1, 1) * freqs
    return torch.cat([args.sin(), args.cos()], 1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.gn1 = nn.GroupNorm(8, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(TEMB, cout)
        self.gn2 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = None if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.gn1(x)))
        h = h + self.temb(F.silu(temb)).view(x.shape[0], -1, 1, 1)
        h = self.conv2(F.silu(self.gn2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.gn = nn.GroupNorm(8, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.gn(x)).reshape(B, 3 * C, H * W).chunk(3, 1)
        attn = F.softmax((q.transpose(1, 2) @ k) * (1 / math.sqrt(C)), -1)  # (B, HW, HW)
        out = (v @ attn.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.proj(out)


class Stage(nn.Module):
    def __init__(self, chans, with_attn):
        super().__init__()
        self.res = nn.ModuleList([ResBlock(a, b) for a, b in chans])
        self.attn = nn.ModuleList([AttnBlock(b) for _, b in chans]) if with_attn else None

    def forward(self, x, temb):
        for i, r in enumerate(self.res):
            x = r(x, temb)
            if self.attn is not None:
                x = self.attn[i](x)
        return x


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.t1 = nn.Linear(TEMB, TEMB)
        self.t2 = nn.Linear(TEMB, TEMB)
        self.conv_in = nn.Conv2d(1, 32, 3, padding=1)
        self.down0 = Stage([(32, 32), (32, 32)], False)
        self.ds0 = nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.down1 = Stage([(32, 64), (64, 64)], False)
        self.ds1 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.down2 = Stage([(64, 128), (128, 128)], True)
        self.up2 = Stage([(256, 128), (128, 128)], True)
        self.us2 = nn.Conv2d(128, 128, 3, padding=1)
        self.up1 = Stage([(192, 64), (64, 64)], False)
        self.us1 = nn.Conv2d(64, 64, 3, padding=1)
        self.up0 = Stage([(96, 32), (32, 32)], False)
        self.gn_out = nn.GroupNorm(8, 32)
        self.conv_out = nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, x, t):
        temb = self.t2(F.silu(self.t1(timestep_embedding(t))))
        s0 = self.down0(self.conv_in(x), temb)
        s1 = self.down1(self.ds0(s0), temb)
        s2 = self.down2(self.ds1(s1), temb)
        h = self.up2(torch.cat([s2, s2], 1), temb)
        h = self.us2(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up1(torch.cat([h, s1], 1), temb)
        h = self.us1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up0(torch.cat([h, s0], 1), temb)
        return self.conv_out(F.silu(self.gn_out(h)))


def alphas_cumprod(T=1000):
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def ddpm_unet():
    B = 32
    torch.manual_seed(SEED)
    m = UNet()
    opt = torch.optim.Adam(m.parameters(), lr=2e-4)
    ab = alphas_cumprod().float()
    x0 = torch.rand(B, 1, 28, 28) * 2 - 1

    def step():
        torch.manual_seed(SEED + 1)
        t = torch.randint(0, 1000, (B,))
        noise = torch.randn(B, 1, 28, 28)
        a = ab[t].view(B, 1, 1, 1)
        xt = x0 * a.sqrt() + noise * (1 - a).sqrt()
        loss = F.mse_loss(m(xt, t.float()), noise)
        adam_step(opt, loss)
        return loss

    return train_case(n_params(m), B, step)


def ddim_sample():
    n, S = 16, 50
    torch.manual_seed(SEED)
    m = UNet().eval()
    ab = alphas_cumprod().tolist()

    def run():
        torch.manual_seed(SEED + 1)
        with torch.no_grad():
            x = torch.randn(n, 1, 28, 28)
            for i in range(S - 1, -1, -1):
                t = i * (1000 // S)
                ab_t = ab[t]
                ab_prev = ab[t - 1000 // S] if i > 0 else 1.0
                eps = m(x, torch.full((n,), float(t)))
                x0 = (x - eps * math.sqrt(1 - ab_t)) * (1 / math.sqrt(ab_t))
                x = x0 * math.sqrt(ab_prev) + eps * math.sqrt(1 - ab_prev)
        return float("nan")

    return Case(n_params(m), n, "images", run)


# ---------------------------------------------------------------- ntm-copy

NTM = dict(bits=8, len=20, N=128, M=20, hidden=100, batch=16)


def addressing(p, mem, w_prev):
    M = NTM["M"]
    k = p[:, :M]
    beta = F.softplus(p[:, M:M + 1])
    g = torch.sigmoid(p[:, M + 1:M + 2])
    s = F.softmax(p[:, M + 2:M + 5], -1)
    gamma = 1 + F.softplus(p[:, M + 5:M + 6])
    dot = (mem @ k.unsqueeze(2)).squeeze(2)  # (B, N)
    norms = mem.pow(2).sum(2).sqrt() * k.pow(2).sum(1, keepdim=True).sqrt() + 1e-8
    wc = F.softmax(beta * (dot / norms), -1)
    wg = g * wc + (1 - g) * w_prev
    nxt = torch.roll(wg, -1, 1)  # w[i + 1]
    prv = torch.roll(wg, 1, 1)  # w[i - 1]
    ws = nxt * s[:, 0:1] + wg * s[:, 1:2] + prv * s[:, 2:3]
    wp = ws.pow(gamma)
    return wp / (wp.sum(1, keepdim=True) + 1e-16)


class Ntm(nn.Module):
    def __init__(self):
        super().__init__()
        bits, M, H = NTM["bits"], NTM["M"], NTM["hidden"]
        self.controller = nn.LSTMCell(bits + 1 + M, H)
        self.read_head = nn.Linear(H, M + 6)
        self.write_head = nn.Linear(H, M + 6 + 2 * M)
        self.out = nn.Linear(H + M, bits)

    def forward(self, x):
        N, M, H = NTM["N"], NTM["M"], NTM["hidden"]
        T, B = x.shape[0], x.shape[1]
        mem = torch.full((B, N, M), 1e-6)
        h, c = torch.zeros(B, H), torch.zeros(B, H)
        r = torch.zeros(B, M)
        wr, ww = torch.zeros(B, N), torch.zeros(B, N)
        outs = []
        for t in range(T):
            h, c = self.controller(torch.cat([x[t], r], 1), (h, c))
            wr = addressing(self.read_head(h), mem, wr)
            r = (wr.unsqueeze(1) @ mem).squeeze(1)
            pw = self.write_head(h)
            ww = addressing(pw, mem, ww)
            e = torch.sigmoid(pw[:, M + 6:2 * M + 6]).unsqueeze(1)
            a = torch.tanh(pw[:, 2 * M + 6:3 * M + 6]).unsqueeze(1)
            w3 = ww.unsqueeze(2)
            mem = mem * (1 - w3 * e) + w3 * a
            outs.append(self.out(torch.cat([h, r], 1)))
        return torch.stack(outs, 0)


def ntm_copy():
    bits, L, B = NTM["bits"], NTM["len"], NTM["batch"]
    T = 2 * L + 1
    torch.manual_seed(SEED)
    m = Ntm()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    seq = (torch.rand(L, B, bits) > 0.5).float()
    x = torch.cat([
        torch.cat([seq, torch.zeros(L, B, 1)], 2),
        torch.cat([torch.zeros(1, B, bits), torch.ones(1, B, 1)], 2),
        torch.zeros(L, B, bits + 1),
    ], 0)

    def step():
        y = m(x)[L + 1:T]
        loss = F.binary_cross_entropy_with_logits(y, seq)
        adam_step(opt, loss)
        return loss

    return train_case(n_params(m), B, step)


CASES = {
    "dcgan": dcgan,
    "conv-vae": conv_vae,
    "lstm-lm": lstm_lm,
    "gpt": gpt,
    "realnvp-2d": realnvp_2d,
    "ddpm-unet": ddpm_unet,
    "ntm-copy": ntm_copy,
    "gpt-sample": gpt_sample,
    "ddim-sample": ddim_sample,
}


def mem_mb():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                out["hwmMb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmRSS:"):
                out["rssMb"] = int(line.split()[1]) / 1024
    return out


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    case = CASES[args.case]()
    reply({"ready": True, "nParams": case.n_params, "items": case.items, "unit": case.unit,
           "torch": torch.__version__, "threads": torch.get_num_threads()})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            ms, out = [], []
            for _ in range(cmd["n"]):
                t0 = time.perf_counter()
                v = case.run()
                ms.append((time.perf_counter() - t0) * 1e3)
                out.append(None if math.isnan(v) else v)
            reply({"ms": ms, "out": out})
        elif cmd["cmd"] == "mem":
            reply(mem_mb())
        elif cmd["cmd"] == "exit":
            break


if __name__ == "__main__":
    main()
