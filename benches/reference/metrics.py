"""Reference values for src/train/metrics.rs tests.

Run: /path/to/venv-with-sklearn/bin/python benches/reference/metrics.py
Prints scikit-learn results; the Rust tests paste them.
"""
import numpy as np, sklearn
from sklearn.metrics import (accuracy_score, confusion_matrix, precision_recall_fscore_support,
    roc_auc_score, fbeta_score)
print("sklearn", sklearn.__version__)
# single-label, 3 classes; class 2 is never predicted
probs = np.array([[0.7,0.2,0.1],[0.1,0.8,0.1],[0.3,0.3,0.4],[0.5,0.4,0.1],
                  [0.2,0.5,0.3],[0.6,0.3,0.1],[0.1,0.6,0.3],[0.45,0.1,0.45]])
probs[2] = [0.3,0.45,0.25]
y = np.array([0,1,2,1,1,0,2,0])
pred = probs.argmax(1); print("pred", pred.tolist())
print("acc", accuracy_score(y,pred))
print("cm", confusion_matrix(y,pred,labels=[0,1,2]).tolist())
p,r,f,s = precision_recall_fscore_support(y,pred,labels=[0,1,2],zero_division=0)
print("prec", p.tolist()); print("rec", r.tolist()); print("f1", f.tolist()); print("support", s.tolist())
# ROC AUC with ties
sc = [0.1,0.4,0.35,0.8,0.4,0.4,0.7,0.1]; lb=[0,0,1,1,1,0,1,0]
print("auc_ties", roc_auc_score(lb,sc))
print("auc_all_tied", roc_auc_score([0,1,0,1],[0.5,0.5,0.5,0.5]))
# column-wise: 4 columns, column 1 has no positives
Y = np.array([[1,0,0,0],[0,0,1,0],[0,0,1,1],[0,0,0,1],[1,0,0,0],[0,0,1,0]])
S = np.array([[0.8,0.1,0.05,0.05],[0.1,0.05,0.7,0.15],[0.05,0.1,0.5,0.35],[0.2,0.1,0.3,0.4],
              [0.3,0.2,0.3,0.2],[0.3,0.1,0.3,0.3]])
per=[roc_auc_score(Y[:,c],S[:,c]) for c in [0,2,3]]
print("col_auc", per, "mean", np.mean(per))
# multi-label from logits; fastai accuracy_multi(inp,targ,thresh=0.5,sigmoid=True)
L = np.array([[2.0,-1.0,0.3],[-0.5,0.2,-3.0],[1.0,1.5,-0.1],[-2.0,-2.0,-2.0]])
T = np.array([[1,0,0],[0,1,1],[1,1,0],[0,0,0]])
P = 1/(1+np.exp(-L)); pr = (P>0.5).astype(int)
print("acc_multi", (pr==T).mean())
print("acc_multi_thr0.6", ((P>0.6)==T).mean())
for avg in ['samples','macro']:
  for b in [1.0,2.0]:
    print("fbeta",avg,b, fbeta_score(T,pr,beta=b,average=avg))
    print("fbeta_zd0",avg,b, fbeta_score(T,pr,beta=b,average=avg,zero_division=0))
    print("fbeta_zd1",avg,b, fbeta_score(T,pr,beta=b,average=avg,zero_division=1))
print("acc_multi_thr0.4", ((P>0.4)==T).mean())
# macro with an empty class (no true, no predicted labels in column 2)
T2 = np.array([[1,0,0],[0,1,0],[1,1,0],[0,0,0]])
pr2 = pr.copy(); pr2[:,2]=0
print("pr2", pr2.tolist())
print("fbeta_macro_empty_class", fbeta_score(T2,pr2,beta=1.0,average='macro'))
print("fbeta_samples_T2", fbeta_score(T2,pr2,beta=0.5,average='samples'))
