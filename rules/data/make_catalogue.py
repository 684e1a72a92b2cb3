"""Regenerates catalogue.json, a demo catalogue (not a real city's list): python rules/data/make_catalogue.py.

Stdlib only and seeded, so the output is byte-for-byte repeatable; the JSON is what ships.
"""

from __future__ import annotations

import json
import random
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

SEED = 20240101
OUT = Path(__file__).with_name("catalogue.json")

# name | ATC level-4 group (FSI western-drug codes embed it) | spec | price yuan | class [| b_selfpay]
WESTERN = """
阿莫西林胶囊|J01CA|0.25g*24粒|8.60|A
阿莫西林克拉维酸钾片|J01CR|0.375g*12片|18.50|A
注射用青霉素钠|J01CE|80万单位*1支|0.56|A
头孢氨苄胶囊|J01DB|0.125g*24粒|6.80|A
头孢呋辛酯片|J01DC|0.25g*12片|21.40|A
头孢克肟分散片|J01DD|0.1g*6片|19.80|B
注射用头孢曲松钠|J01DD|1g*1瓶|4.35|A
阿奇霉素片|J01FA|0.25g*6片|15.20|A
克拉霉素缓释片|J01FA|0.5g*6片|32.60|B
左氧氟沙星片|J01MA|0.5g*4片|12.90|A
莫西沙星片|J01MA|0.4g*3片|36.80|B
甲硝唑片|J01XD|0.2g*100片|7.50|A
苯磺酸氨氯地平片|C08CA|5mg*7片|3.20|A
硝苯地平控释片|C08CA|30mg*7片|22.80|B
缬沙坦胶囊|C09CA|80mg*7粒|12.60|B
厄贝沙坦片|C09CA|0.15g*7片|4.10|A
氯沙坦钾片|C09CA|50mg*7片|9.70|B
卡托普利片|C09AA|25mg*100片|6.20|A
马来酸依那普利片|C09AA|10mg*16片|5.40|A
琥珀酸美托洛尔缓释片|C07AB|47.5mg*7片|18.90|B
酒石酸美托洛尔片|C07AB|25mg*20片|3.80|A
阿托伐他汀钙片|C10AA|20mg*7片|4.60|A
瑞舒伐他汀钙片|C10AA|10mg*7片|5.90|B
辛伐他汀片|C10AA|20mg*10片|4.20|A
阿司匹林肠溶片|B01AC|100mg*30片|14.50|A
硫酸氢氯吡格雷片|B01AC|75mg*7片|9.80|B
华法林钠片|B01AA|2.5mg*60片|19.60|A
单硝酸异山梨酯缓释片|C01DA|40mg*7片|11.30|B
硝酸甘油片|C01DA|0.5mg*100片|12.00|A
螺内酯片|C03DA|20mg*100片|9.50|A
氢氯噻嗪片|C03AA|25mg*100片|5.80|A
呋塞米片|C03CA|20mg*100片|6.40|A
盐酸二甲双胍片|A10BA|0.5g*20片|2.90|A
盐酸二甲双胍缓释片|A10BA|0.5g*30片|8.70|A
格列美脲片|A10BB|2mg*15片|16.20|B
格列齐德缓释片|A10BB|30mg*30片|11.80|A
阿卡波糖片|A10BF|50mg*30片|12.90|A
磷酸西格列汀片|A10BH|100mg*7片|24.50|B
达格列净片|A10BK|10mg*14片|33.60|B
门冬胰岛素注射液|A10AB|3ml:300单位*1支|36.90|B
甘精胰岛素注射液|A10AE|3ml:300单位*1支|69.80|B
奥美拉唑肠溶胶囊|A02BC|20mg*14粒|5.60|A
雷贝拉唑钠肠溶片|A02BC|10mg*14片|23.40|B
泮托拉唑钠肠溶片|A02BC|40mg*7片|14.70|B
法莫替丁片|A02BA|20mg*24片|4.30|A
铝碳酸镁咀嚼片|A02AD|0.5g*20片|15.60|B
多潘立酮片|A03FA|10mg*30片|13.20|A
蒙脱石散|A07BC|3g*10袋|11.50|A
乳果糖口服溶液|A06AD|100ml:66.7g*1瓶|38.00|B
双歧杆菌三联活菌胶囊|A07FA|210mg*24粒|21.60|B
布洛芬缓释胶囊|M01AE|0.3g*20粒|12.80|A
对乙酰氨基酚片|N02BE|0.5g*12片|3.50|A
双氯芬酸钠缓释片|M01AB|75mg*10片|8.90|A
塞来昔布胶囊|M01AH|0.2g*6粒|19.70|B
美洛昔康片|M01AC|7.5mg*10片|9.20|B
盐酸氨溴索片|R05CB|30mg*20片|6.90|A
孟鲁司特钠片|R03DC|10mg*5片|21.30|B
硫酸沙丁胺醇吸入气雾剂|R03AC|100μg*200揿|22.50|A
布地奈德福莫特罗吸入粉雾剂|R03AK|160μg/4.5μg*60吸|198.00|B
氯雷他定片|R06AX|10mg*6片|17.80|A
盐酸西替利嗪片|R06AE|10mg*12片|19.20|B
复方甘草片|R05DA|100片|6.50|A
地西泮片|N05BA|2.5mg*20片|1.90|A
艾司唑仑片|N05CD|1mg*20片|2.60|A
阿普唑仑片|N05BA|0.4mg*20片|3.30|A
盐酸舍曲林片|N06AB|50mg*14片|39.60|B
盐酸帕罗西汀片|N06AB|20mg*10片|28.40|B
奥氮平片|N05AH|5mg*14片|42.80|B
利培酮片|N05AX|1mg*20片|16.90|A
卡马西平片|N03AF|0.1g*100片|19.50|A
丙戊酸钠缓释片|N03AG|0.5g*30片|54.20|B
左乙拉西坦片|N03AX|0.25g*30片|36.50|B
盐酸多奈哌齐片|N06DA|5mg*7片|26.80|B
甲钴胺片|B03BA|0.5mg*20片|14.40|B
左甲状腺素钠片|H03AA|50μg*100片|25.50|A
甲巯咪唑片|H03BB|10mg*50片|13.60|A
醋酸泼尼松片|H02AB|5mg*100片|8.80|A
地塞米松磷酸钠注射液|H02AB|1ml:5mg*10支|4.20|A
盐酸坦索罗辛缓释胶囊|G04CA|0.2mg*10粒|29.80|B
非那雄胺片|G04CB|5mg*10片|32.70|B
氯化钠注射液|B05XA|0.9%*250ml|3.10|A
葡萄糖注射液|B05BA|5%*250ml|3.20|A
葡萄糖氯化钠注射液|B05BB|5%:0.9%*500ml|4.60|A
复方氯化钠注射液|B05BB|500ml*1瓶|4.10|A
人血白蛋白|B05AA|10g(20%*50ml)*1瓶|398.00|B|0.20
复合维生素B片|A11EA|100片|3.60|A
叶酸片|B03BB|0.4mg*31片|8.60|A
硫酸亚铁片|B03AA|0.3g*100片|7.90|A
碳酸钙D3片|A12AX|600mg*30片|26.00|B
枸橼酸他莫昔芬片|L02BA|10mg*60片|32.40|A
来曲唑片|L02BG|2.5mg*10片|59.80|B
卡培他滨片|L01BC|0.5g*12片|168.00|B|0.20
注射用胸腺法新|L03AX|1.6mg*1支|128.00|B|0.30
左氧氟沙星滴眼液|S01AE|5ml:24.4mg*1支|16.50|A
玻璃酸钠滴眼液|S01XA|0.1%*5ml|26.30|B
莫匹罗星软膏|D06AX|2%*5g|13.80|B
糠酸莫米松乳膏|D07AC|0.1%*10g|24.60|B
阿昔洛韦乳膏|D06BB|3%*10g|4.50|A
多烯磷脂酰胆碱胶囊|A05BA|228mg*24粒|46.90|B
维生素C片|A11GA|0.1g*100片|3.80|C
枸橼酸西地那非片|G04BE|50mg*1片|39.00|C
奥利司他胶囊|A08AB|0.12g*21粒|168.00|C
米诺地尔搽剂|D11AX|5%*60ml|89.00|C
辅酶Q10胶囊|C01EB|10mg*60粒|36.00|C
"""

# Chinese patent medicines (中成药): name | category | spec | price | class [| b_selfpay]
PATENT = """
连花清瘟胶囊|A01|0.35g*24粒|14.80|A
复方丹参滴丸|A12|27mg*180丸|28.60|A
板蓝根颗粒|A01|10g*20袋|12.50|A
六味地黄丸|A09|200丸|16.80|A
藿香正气水|A06|10ml*10支|9.60|A
银翘解毒片|A01|0.3g*36片|7.20|A
感冒灵颗粒|A01|10g*9袋|13.50|B
安宫牛黄丸|A14|3g*1丸|498.00|B|0.30
速效救心丸|A12|40mg*150粒|28.00|A
血塞通软胶囊|A12|0.33g*24粒|31.50|B
蒲地蓝消炎口服液|A02|10ml*10支|39.80|B
云南白药胶囊|A15|0.25g*32粒|29.50|A
麝香保心丸|A12|22.5mg*42丸|36.90|A
通心络胶囊|A12|0.26g*30粒|42.60|B
丹红注射液|A12|10ml*1支|27.30|B|0.20
金水宝胶囊|A10|0.33g*72粒|58.00|B
强力枇杷露|A03|240ml*1瓶|19.90|B
复方阿胶浆|A09|20ml*12支|69.00|B
片仔癀|A02|3g*1粒|720.00|C
阿胶|A09|250g*1盒|1180.00|C
"""

# Services: local 9-digit price-item code (national 2001 norms) | name | unit price | class [| b_selfpay]
SERVICES = """
110100001|普通门诊挂号费|1.00|A
110200001|普通门诊诊查费|10.00|A
110200002|副主任医师门诊诊查费|20.00|A
110200003|主任医师门诊诊查费|30.00|A
110200004|知名专家门诊诊查费|50.00|B|0.20
110200005|急诊诊查费|15.00|A
110200006|互联网复诊诊查费|10.00|A
110300001|住院诊查费(日)|20.00|A
110400001|急诊监护费(日)|60.00|A
110900001|特级护理(日)|120.00|A
110900002|一级护理(日)|40.00|A
110900003|二级护理(日)|25.00|A
110900004|三级护理(日)|15.00|A
111000001|普通病房床位费(三人间,日)|40.00|A
111000002|普通病房床位费(双人间,日)|60.00|B
111000003|单人间病房床位费(日)|150.00|C
111000004|重症监护病房床位费(日)|120.00|A
111000005|特需病房床位费(日)|500.00|C
111100001|院内会诊|30.00|A
120100001|重症监护(小时)|10.00|A
120400001|肌肉注射|3.00|A
120400002|静脉注射|5.00|A
120400006|静脉输液(第一组)|8.00|A
120400007|静脉输液(每增加一组)|2.00|A
120600001|导尿|10.00|A
120900001|氧气吸入(小时)|3.00|A
121000001|大换药|30.00|A
121000002|中换药|20.00|A
121000003|小换药|10.00|A
210102003|数字化X线摄影(DR,单部位)|60.00|A
210300001|X线计算机体层(CT)平扫(单部位)|200.00|B
210300002|X线计算机体层(CT)增强扫描|380.00|B
210400001|磁共振(MRI)平扫|550.00|B
210400002|磁共振(MRI)增强扫描|800.00|B|0.20
220100001|普通B超检查(单部位)|30.00|A
220600001|彩色多普勒超声常规检查|120.00|A
220600002|超声心动图(心脏彩超)|240.00|B
230900001|正电子发射计算机断层显像(PET-CT)|7000.00|C
250101015|血细胞分析(血常规)|20.00|A
250102001|尿常规检查|8.00|A
250103001|粪便常规检查|5.00|A
250301001|葡萄糖测定|5.00|A
250301002|糖化血红蛋白测定|50.00|A
250303001|血脂四项|40.00|A
250305001|丙氨酸氨基转移酶测定|6.00|A
250305002|肝功能全套|60.00|A
250307001|肌酐测定|5.00|A
250307002|尿酸测定|5.00|A
250309001|电解质四项|24.00|A
250401001|C反应蛋白测定|30.00|A
250402001|降钙素原检测|150.00|B
250403001|甲状腺功能五项|120.00|B
250404001|乙型肝炎两对半定量|60.00|A
250405001|癌胚抗原(CEA)测定|60.00|B
250406001|凝血四项|60.00|A
260000001|ABO血型鉴定|10.00|A
270300001|组织病理学检查与诊断|200.00|A
310701001|常规心电图检查|15.00|A
310701002|动态心电图(24小时)|200.00|B
310601001|肺通气功能检查|80.00|B
310903001|电子胃镜检查|300.00|A
310903002|电子结肠镜检查|400.00|B
330100001|全身麻醉|600.00|A
330100002|无痛内镜检查麻醉|200.00|B|0.20
331003001|阑尾切除术|1200.00|A
331002002|腹腔镜胆囊切除术|2500.00|B
331501001|剖宫产术|1500.00|A
330803001|白内障超声乳化摘除术+人工晶体植入|2800.00|B
331204001|人工全髋关节置换术|4500.00|B
340100001|电针治疗|20.00|A
340200001|运动疗法|40.00|B
340200002|作业疗法|30.00|B
430000001|普通针刺|20.00|A
430000002|艾灸|20.00|B
440000001|推拿治疗|40.00|B
450000001|拔罐|10.00|A
480000001|中药饮片调剂(每剂)|1.00|A
120000001|健康体检(套餐)|480.00|C
330000001|重睑成形术(美容)|3500.00|C
330000002|准分子激光角膜屈光手术|6500.00|C
110000001|特需门诊诊查费|300.00|C
"""

# Materials: category | name | unit price | class [| cap yuan | b_selfpay]
MATERIALS = """
03|一次性使用输液器(带针)|3.20|B|3.00
03|一次性使用无菌注射器(5ml)|0.50|A
03|静脉留置针(密闭式)|28.00|B|25.00
03|中心静脉导管包(双腔)|360.00|B|400.00|0.10
03|一次性使用输血器|4.50|A
03|一次性使用导尿包|18.00|A
03|一次性使用胃管|6.80|A
03|一次性使用吸痰管|1.60|A
03|一次性使用引流袋|3.50|A
03|负压引流装置|120.00|B|100.00|0.10
04|医用脱脂纱布块(10片)|2.40|A
04|医用脱脂棉(50g)|3.60|A
04|弹力绷带|9.80|A
04|石膏绷带|12.00|A
04|透明敷贴|6.50|B
04|藻酸盐伤口敷料|58.00|B|50.00|0.20
04|止血纱布|180.00|C
02|冠状动脉药物洗脱支架|780.00|B|800.00|0.30
02|PTCA球囊扩张导管|580.00|B|600.00|0.20
02|介入导丝|260.00|B|280.00|0.20
02|造影导管|150.00|B|180.00|0.10
02|心脏起搏器(双腔)|30000.00|B|25000.00|0.30
02|心脏起搏器(单腔)|16000.00|B|18000.00|0.30
06|人工晶体(单焦,非球面)|820.00|B|1000.00|0.20
06|人工晶体(多焦)|12000.00|C
05|人工髋关节假体(全髋,陶瓷-聚乙烯)|7200.00|B|7500.00|0.30
05|人工膝关节假体(全膝)|5300.00|B|5000.00|0.30
05|接骨板(锁定加压)|2100.00|B|1800.00|0.20
05|锁定螺钉|260.00|B|240.00|0.20
05|髓内钉|3900.00|B|4000.00|0.20
07|腔镜直线切割吻合器|3500.00|B|3000.00|0.20
07|腔镜切割吻合器钉仓|1200.00|B|1000.00|0.20
07|疝修补补片|1500.00|B|1600.00|0.20
07|可吸收缝合线|68.00|B|60.00
07|医用组织胶|260.00|C
08|气管插管(带囊)|18.00|A
08|喉罩|120.00|B|110.00
08|麻醉呼吸回路|35.00|A
09|血液透析器|110.00|B|120.00|0.10
09|血液透析管路|45.00|B|50.00
09|动静脉内瘘穿刺针|12.00|A
10|血糖试纸(条)|2.50|C
10|胰岛素笔用针头|1.20|C
10|医用外科口罩|0.80|C
10|医用检查手套(副)|0.60|A
11|输尿管支架管(双J管)|320.00|B|300.00|0.10
11|导尿管(双腔气囊)|12.00|A
12|骨科石膏托|55.00|A
12|颈托|120.00|C
12|医用冰袋|8.00|C
"""


def rows(table: str) -> list[list[str]]:
    """The |-separated fields of each line of a table."""
    return [line.split("|") for line in table.strip().splitlines()]


def yuan(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def bigger_pack(spec: str, price: Decimal, rng: random.Random) -> tuple[str, Decimal] | None:
    """A second pack size of the same drug: twice the count, a little cheaper per unit."""
    match = re.search(r"\*(\d+)([^\d*]+)$", spec)
    if not match:
        return None
    count = int(match.group(1)) * 2
    factor = Decimal(rng.choice(["1.85", "1.90", "1.95", "2.00"]))
    return spec[: match.start()] + f"*{count}{match.group(2)}", price * factor


def drug_records(rng: random.Random) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for index, (name, atc, spec, price_s, cls, *share) in enumerate(rows(WESTERN), start=1):
        variants = [(spec, Decimal(price_s))]
        extra = bigger_pack(spec, Decimal(price_s), rng) if rng.random() < 0.8 else None
        if extra:
            variants.append(extra)
        for form, (vspec, price) in enumerate(variants, start=1):
            code = f"X{atc}A{index:03d}A{form:03d}{rng.randrange(1, 400):03d}{rng.randrange(1, 10**6):06d}"
            out.append(record(code, f"{name} {vspec}", cls, price, share, rng, "drug"))
    for index, (name, cat, spec, price_s, cls, *share) in enumerate(rows(PATENT), start=1):
        code = f"Z{cat}AAL{index:04d}0{rng.randrange(10, 99)}{rng.randrange(1, 10**6):06d}"
        out.append(record(code, f"{name} {spec}", cls, Decimal(price_s), share, rng, "drug"))
    return out


def record(
    code: str, name: str, cls: str, price: Decimal, share: list[str], rng: random.Random, kind: str
) -> dict[str, str]:
    rec = {"med_list_codg": code, "name": name, "class": cls, "price": yuan(price), "kind": kind}
    if cls == "B" and rng.random() < 0.2:
        # Some B drugs carry a reference cap (限价); some sit above it, the excess goes to overlmt_selfpay.
        rec["price_cap"] = yuan(price * Decimal(rng.choice(["0.85", "0.90", "1.00", "1.10", "1.20"])))
    if share:
        rec["b_selfpay"] = share[0]
    return rec


def service_records(rng: random.Random) -> list[dict[str, str]]:
    out = []
    for local, name, price, cls, *share in rows(SERVICES):
        code = f"00{local}0000-{local}"
        out.append(record(code, name, cls, Decimal(price), share, rng, "service"))
    return out


def material_records(rng: random.Random) -> list[dict[str, str]]:
    out = []
    for index, (cat, name, price, cls, *rest) in enumerate(rows(MATERIALS), start=1):
        sub = f"{rng.randrange(1, 20):02d}{rng.randrange(1, 20):02d}"
        code = f"C{cat}{sub}{index:03d}{rng.randrange(1, 10**4):04d}{rng.randrange(1, 10**6):06d}"
        rec = {"med_list_codg": code, "name": name, "class": cls, "price": price, "kind": "material"}
        if rest:
            rec["price_cap"] = rest[0]
        if len(rest) > 1:
            rec["b_selfpay"] = rest[1]
        out.append(rec)
    return out


def main() -> None:
    rng = random.Random(SEED)
    records = drug_records(rng) + service_records(rng) + material_records(rng)
    codes = [r["med_list_codg"] for r in records]
    assert len(codes) == len(set(codes)), "duplicate med_list_codg"
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    OUT.write_text(f"[\n{body}\n]\n", encoding="utf-8")
    print(f"{len(records)} records -> {OUT}")


if __name__ == "__main__":
    main()
