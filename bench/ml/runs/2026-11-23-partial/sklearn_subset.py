import time, json, sys, numpy as np
from sklearn.svm import SVC
from sklearn.neighbors import KNeighborsClassifier
from sklearn.ensemble import RandomForestClassifier
d = np.loadtxt(sys.argv[1] + "/clf_100k.csv", delimiter=",", skiprows=1)
x, y = d[:, :-1], d[:, -1]
cut = int(len(x) * 0.8)
xtr, ytr, xte, yte = x[:cut], y[:cut], x[cut:], y[cut:]
def run(name, m, tr, te, rep):
    fits, preds = [], []
    for _ in range(rep):
        t0 = time.perf_counter(); m.fit(*tr); t1 = time.perf_counter(); p = m.predict(te[0]); t2 = time.perf_counter()
        fits.append(t1 - t0); preds.append(t2 - t1)
    print(json.dumps({"model": name, "fit_seconds": round(sorted(fits)[len(fits)//2], 4), "predict_seconds": round(sorted(preds)[len(preds)//2], 4), "accuracy": round(float((p == te[1]).mean()), 5), "repeat": rep}), flush=True)
run("svm_rbf", SVC(kernel="rbf"), (xtr[:10000], ytr[:10000]), (xte, yte), 3)
run("knn", KNeighborsClassifier(n_neighbors=5), (xtr[:20000], ytr[:20000]), (xte[:2000], yte[:2000]), 3)
run("random_forest", RandomForestClassifier(n_estimators=100, max_depth=10, n_jobs=2, random_state=0), (xtr, ytr), (xte, yte), 1)
