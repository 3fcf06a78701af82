"""Reference values for src/train/loss.rs tests.

Run: /path/to/venv-with-torch/bin/python benches/reference/losses.py
Prints float64 results of torch.nn.functional calls; the Rust tests paste them.
"""
import torch, torch.nn.functional as F
torch.set_printoptions(precision=17)
x = torch.tensor([[1.0,-0.5,2.0,0.3],[0.2,0.1,-1.2,3.0],[-2.0,0.5,0.5,1.5]], dtype=torch.float64, requires_grad=True)
y = torch.tensor([2,0,3])
def p(name, t): print(name, [float(v) for v in t.detach().flatten()])
p("ce_mean", F.cross_entropy(x,y).reshape(1))
p("ce_none", F.cross_entropy(x,y,reduction='none'))
for red in ['mean','sum','none']:
    p(f"ls_{red}", F.cross_entropy(x,y,label_smoothing=0.1,reduction=red).reshape(-1))
p("ls_eps0.3_mean", F.cross_entropy(x,y,label_smoothing=0.3).reshape(1))
l = F.cross_entropy(x,y,label_smoothing=0.1); g,=torch.autograd.grad(l,x); p("ls_grad", g)
t = torch.tensor([[0.1,0.2,0.6,0.1],[0.7,0.1,0.1,0.1],[0,0,0.5,0.5]],dtype=torch.float64)
p("soft_mean", F.cross_entropy(x,t).reshape(1))
p("soft_none", F.cross_entropy(x,t,reduction='none'))
yp = torch.tensor([0,3,2]); lam = torch.tensor([0.7,0.55,0.9],dtype=torch.float64)
# fastai MixHandler.lf: torch.lerp(lf(pred,yb1), lf(pred,yb), lam) then mean; yb1 = shuffled targets
mix = torch.lerp(F.cross_entropy(x,yp,reduction='none'), F.cross_entropy(x,y,reduction='none'), lam).mean()
p("mix_ce", mix.reshape(1))
mixs = torch.lerp(F.cross_entropy(x,yp,reduction='none'), F.cross_entropy(x,y,reduction='none'), torch.tensor(0.3,dtype=torch.float64)).mean()
p("mix_ce_scalar0.3", mixs.reshape(1))
z = torch.tensor([[0.5,-1.5,30.0],[-40.0,0.0,2.5]],dtype=torch.float64, requires_grad=True)
yt = torch.tensor([[1.,0.,1.],[0.,1.,0.]],dtype=torch.float64)
pw = torch.tensor([1.0,3.0,0.5],dtype=torch.float64)
p("bce_mean", F.binary_cross_entropy_with_logits(z,yt).reshape(1))
p("bce_none", F.binary_cross_entropy_with_logits(z,yt,reduction='none'))
p("bce_pw_mean", F.binary_cross_entropy_with_logits(z,yt,pos_weight=pw).reshape(1))
ys = yt*(1-0.1)+0.1/2
p("bce_ls_mean", F.binary_cross_entropy_with_logits(z,ys).reshape(1))
l = F.binary_cross_entropy_with_logits(z,ys,pos_weight=pw,reduction='sum'); p("bce_ls_pw_sum", l.reshape(1))
g,=torch.autograd.grad(l,z); p("bce_ls_pw_sum_grad", g)
big = torch.tensor([[1000.,0.,-1000.]],dtype=torch.float64)
p("ce_big", F.cross_entropy(big, torch.tensor([1])).reshape(1))
