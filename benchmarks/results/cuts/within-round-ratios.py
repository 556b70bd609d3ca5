# Within-round ratios of two contenders from the "Every cell" table of a loadtest-rounds.md (issue 19 cuts):
# python3 within-round-ratios.py rounds-after.md rounds-before.md
import sys,statistics,collections
def cells(path):
    rows=[];on=False
    for l in open(path):
        if l.startswith('## Every cell'): on=True; continue
        if on and l.startswith('| ') and not l.startswith('| round') :
            p=[x.strip() for x in l.strip().strip('|').split('|')]
            if p[0].isdigit(): rows.append(p)
    return rows
for path in sys.argv[1:]:
    rows=cells(path)
    d=collections.defaultdict(dict)
    for p in rows:
        r,shape,pos,c=int(p[0]),p[1],p[2],p[3]
        d[(r,shape)][c]=dict(rps=float(p[6].replace(',','')),p50=float(p[7].replace(',','')),cpu=float(p[9]),other=float(p[-1]))
    print(path)
    for a,b in [('mesh','factory'),('meshnolog','factory'),('mesh','meshnolog'),('meshnolog','rr')]:
        for metric,shape in [('cpu','sat'),('rps','sat'),('p50','rate')]:
            vals=[]
            for (r,s),m in d.items():
                if s==shape and a in m and b in m:
                    vals.append(m[a][metric]/m[b][metric] if metric!='p50' else m[a][metric]-m[b][metric])
            if vals: print(f'  {a}/{b} {metric} {shape}: median {statistics.median(vals):.2f} [{min(vals):.2f}-{max(vals):.2f}] n={len(vals)}')
    oth=[m[c]['other'] for m in d.values() for c in m]
    print('  other CPU % median', statistics.median(oth), 'range', min(oth), max(oth))
