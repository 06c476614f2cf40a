"""Swedish clinical note texts: a corpus of sentence templates and the vectorised builder of whole notes.

A note is a sequence of sections (``Fynd:``, ``Status:``, …) whose sentences come from the pools
below. Every note kind has one section that grows (the findings, the course, the operation story)
until the note reaches the length drawn for it: most notes hold a few hundred to 2,500 characters, a
share (``LONG_SHARE``) 4,100-12,600, so several 4,000-character chunks. Some notes name a relative or
a colleague (names from ``names.py``), some carry the whitespace the load rules normalise away
(spaces or tabs at line ends, blank lines at the start or end).

How it is built without a loop over notes: a section's ``j``-th sentence is ``(base + j * step) % n``
of its pool (``step`` coprime to ``n``: distinct sentences until the pool is used up). Each sentence is
stored together with what follows it (a space, a line break, a blank line, or a line break after
trailing spaces), so a note is a run of vocabulary entries: one numpy index array for all notes, one
polars gather, and the notes are slices of the gathered Arrow buffer (no per-note Python string).

All text is Windows-1252-encodable (PAS) and in the Basic Multilingual Plane; no line starts with a
space or a tab.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.synth import names as V

#: note kinds: the PAS TYP codes (0-3), then the PCS types (4-5)
KINDS = ("RTG", "EPI", "DAG", "OPB", "journal", "referral-answer")
PAS_TYPES = KINDS[:4]
PCS_TYPES = KINDS[4:]
NEGATION_WORDS = ("inte", "ej", "icke", "ingen", "inget", "inga", "utan", "aldrig", "ua", "negativ", "negativt")
LONG_SHARE = 0.06  # notes of 4,100-12,600 characters (two to four 4,000-character chunks)
MESSY_SHARE = 0.10  # notes with whitespace the load rules remove
NAME_SHARE = 0.10  # notes naming a relative or a colleague
BATCH = 100_000  # notes built at a time

# ------------------------------------------------------------------------------------------------
# the corpus

RTG_EXAM = (
    "Slätröntgen höger handled, två projektioner.",
    "Slätröntgen vänster handled, två projektioner.",
    "Slätröntgen vänster fotled.",
    "Slätröntgen höger höft och bäcken.",
    "Lungröntgen, frontal och sidobild.",
    "DT hjärna utan kontrast.",
    "DT thorax med intravenös kontrast.",
    "DT buk med intravenös kontrast.",
    "DT-angiografi av lungartärerna.",
    "MR ländrygg.",
    "MR höger knä.",
    "Ultraljud buk.",
    "Ultraljud halskärl bilateralt.",
    "Skelettröntgen vänster axel.",
    "Slätröntgen halsrygg.",
    "DT-urografi.",
)
RTG_QUESTION = (
    "Fraktur?",
    "Fraktur efter fall på utsträckt hand?",
    "Pneumoni?",
    "Lungemboli?",
    "Blödning? Infarkt?",
    "Gallsten? Kolecystit?",
    "Appendicit?",
    "Pleuravätska?",
    "Stas? Hjärtsvikt?",
    "Njursten? Avflödeshinder?",
    "Diskbråck med rotpåverkan?",
    "Luxation?",
    "Kontroll efter behandlad pneumoni.",
    "Progress av känd malignitet?",
    "Stenos i halskärlen?",
    "Oklar buksmärta sedan två dygn, ileus?",
)
RTG_COMPARE = (
    "Jämförelse med undersökning från föregående år.",
    "Inga tidigare undersökningar finns för jämförelse.",
    "Jämfört med föregående undersökning ses ingen förändring.",
    "Tidigare bilder är inte tillgängliga.",
    "Jämförelse med DT från i våras.",
    "Jämfört med förra veckans bilder har infiltratet minskat.",
)
RTG_FINDINGS = (
    "Ingen fraktur.",
    "Ingen luxation.",
    "Inga tecken till pneumoni.",
    "Ingen pleuravätska.",
    "Normal hjärtstorlek.",
    "Hjärtat är inte förstorat.",
    "Inga förstorade lymfkörtlar.",
    "Ingen fri gas.",
    "Ingen fri vätska i buken.",
    "Ingen intrakraniell blödning.",
    "Inget expansivt.",
    "Inga tecken till färsk infarkt.",
    "Ventrikelsystemet är normalvitt och mittställt.",
    "Lätt förtjockad bronkväggsteckning basalt bilateralt.",
    "Degenerativa förändringar i nedre ländryggen.",
    "Kortikalt avbrott i distala radius utan felställning.",
    "Mjukdelssvullnad dorsalt över handleden.",
    "Gallblåsan innehåller flera konkrement, ingen väggförtjockning.",
    "Levern är av normal storlek utan fokala förändringar.",
    "Njurarna är normalstora utan avflödeshinder.",
    "Ingen hydronefros.",
    "Lungparenkymet är utan anmärkning.",
    "Mediastinum är inte breddökat.",
    "Inga patologiska förändringar i skelettet.",
    "Ingen lungemboli.",
    "Pleurala förtjockningar apikalt, oförändrade.",
    "Ej några tecken till ileus.",
    "Aorta av normal vidd.",
    "Lindrig artros i höger höftled.",
    "Diskbuktning L4-L5 utan säker rotpåverkan.",
    "Ingen spinal stenos.",
    "Menisker och korsband är intakta.",
    "Måttlig mängd ledvätska; inget benmärgsödem.",
    "Inga förkalkningar i kärlväggarna.",
    "Ingen signifikant stenos i halskärlen.",
    "Konkrement i höger uretär, 4 mm, med lätt dilatation ovanför.",
    "Mjälten är normalstor.",
    "Pankreas är utan anmärkning.",
    "Infiltrat i höger underlob.",
    "Ingen pneumothorax.",
    "Sinus costophrenicus är fria bilateralt.",
    "Lätt kyfos i bröstryggen, i övrigt ua.",
    "Osteopeni men ingen kotkompression.",
    "Litet nodulus i vänster överlob, 3 mm, sannolikt benignt.",
    "Patienten kunde inte ligga still; vissa rörelseartefakter.",
)
RTG_CONCLUSION = (
    "Ingen fraktur.",
    "Inga tecken till pneumoni.",
    "Normalfynd.",
    "Inget patologiskt.",
    "Fynd förenliga med distal radiusfraktur utan felställning.",
    "Gallsten utan tecken till kolecystit.",
    "Ingen lungemboli.",
    "Ingen blödning eller infarkt påvisas.",
    "Pneumoni i höger underlob; kontroll om sex veckor rekommenderas.",
    "Degenerativa förändringar, i övrigt ua.",
    "Uretärsten höger sida med lätt avflödeshinder.",
    "Inga tecken till stas.",
)
ANAMNES = (
    "Tidigare frisk.",
    "Patienten har inte haft feber.",
    "Känd hypertoni, välbehandlad.",
    "Röker inte.",
    "Ingen känd läkemedelsallergi.",
    'Pat. säger "ont i magen"; remiss skickad.',
    "Ingen hosta eller andfåddhet.",
    "Har aldrig haft liknande besvär tidigare.",
    "Besvären debuterade för tre dagar sedan.",
    "Negativ till illamående och kräkningar.",
    "Inga urinvägsbesvär.",
    'Patienten beskriver smärtan som "molande"; ingen utstrålning.',
    "Diabetes typ 2 sedan tio år, tablettbehandlad.",
    "Alkohol: enstaka glas vin, inget missbruk.",
    "Bor med maken i villa och klarar sig själv.",
    "Bor ensam i lägenhet med hemtjänst två gånger dagligen.",
    "Förnekar bröstsmärta.",
    'Uppger "tryck över bröstet" vid ansträngning; går över i vila.',
    "Föll i hemmet, minns fallet, ingen medvetslöshet.",
    "Aptiten har varit nedsatt den senaste veckan.",
    "Ingen viktnedgång.",
    "Har tagit paracetamol utan effekt.",
    "Inget blod i avföringen.",
    "Hjärtinfarkt för åtta år sedan, behandlad med PCI.",
    "Astma sedan barndomen, använder inhalator vid behov.",
    "Opererad för ljumskbråck för flera år sedan.",
    "Har inte kunnat sova på grund av smärtan.",
    "Ingen resa utomlands den senaste tiden.",
    "Förmaksflimmer, behandlas med antikoagulantia.",
    "Inga kända ärftliga sjukdomar.",
    "Hosta med gulgrönt slem sedan en vecka.",
    "Smärtan förvärras vid rörelse – lindras i vila.",
)
STATUS = (
    "AT: gott, opåverkad.",
    "AT: lätt påverkad av smärta.",
    "Cor: regelbunden rytm, inga blåsljud.",
    "Pulm: normala andningsljud bilateralt, inga rassel.",
    "Lungor: ua.",
    "Buk: mjuk, ingen ömhet, inga resistenser.",
    "Buk: mjuk; lätt ömhet i höger fossa, ingen défense.",
    "Ingen feber.",
    "Temp 37,2.",
    "Temp 38,4.",
    "BT 135/80, puls 72.",
    "BT 150/95 – bör kontrolleras.",
    "Saturation 97 % på luft.",
    "Neurologiskt: inga fokala bortfall.",
    "Hud: inga utslag.",
    "Munhåla och svalg: ua.",
    "Svalg: rodnad, inga beläggningar.",
    "Öron: trumhinnor ua bilateralt.",
    "Lymfkörtlar: inga palpabla.",
    "Inga ödem.",
    "Lätta underbensödem bilateralt.",
    "Ytterligare status utan anmärkning.",
    "Inget patologiskt.",
    "Distalstatus ua.",
    "Ömmar vid palpation över laterala malleolen, ingen felställning.",
    "Nedsatt rörlighet i höger axel, ingen svullnad.",
    "CRP 12.",
    "CRP 86, LPK 13,2.",
    "Hb 128.",
    "EKG: sinusrytm 70/min, inga ST-förändringar.",
    "Rörlig och gångstabil.",
    "Ingen nackstelhet.",
    "Negativ Lasègue bilateralt.",
    "Ingen dunkömhet över njurloger.",
    "Psykiskt: adekvat, inte nedstämd.",
)
ASSESSMENT = (
    "Bedöms som virusinfektion.",
    "Ingen indikation för antibiotika.",
    "Opåverkad och stabil.",
    "Sannolikt muskuloskeletal smärta, inget som talar för kardiell genes.",
    "Förbättrad sedan igår.",
    "Oförändrat tillstånd.",
    "Inga tecken på allvarlig sjukdom.",
    "Misstänkt urinvägsinfektion.",
    "Välreglerad hypertoni.",
    "Inte aktuellt med inläggning.",
    "Inget behov av röntgen i nuläget.",
    "Bedöms som okomplicerad lumbago.",
    "Tonsillit, Centor 3; strep A positiv.",
    "Troligen bakteriell pneumoni, inte påverkad.",
    "Sårläkning utan tecken på infektion.",
    "Ingen misstanke om fraktur.",
    "Smärtan är väl kontrollerad.",
    "Klinisk bild talar inte för appendicit.",
    "Blodtrycket är fortfarande högt, inte på mål.",
    "Diabetes med HbA1c inom målområdet.",
    "Ingen förändring i neurologiskt status.",
    "Bedöms som stressrelaterad sömnstörning.",
)
PLAN = (
    "Åter vid försämring.",
    "Kontroll om två veckor.",
    "Fortsatt behandling enligt ordination.",
    "Remiss till ortopedmottagningen.",
    "Provtagning inför nästa besök.",
    "Utskrivning planeras i morgon.",
    "Ingen ändring av läkemedel.",
    "Sjukskrivning en vecka.",
    "Recept på fenoximetylpenicillin i tio dagar.",
    "Informerad om varningstecken.",
    "Ingen uppföljning behövs.",
    "Telefonkontakt när provsvar finns.",
    "Pat. informerad; samtycker till planen.",
    "Fortsatt observation på avdelningen.",
    "Mobilisering med fysioterapeut.",
    "Smärtlindring vid behov.",
    "Ny bedömning i morgon på ronden.",
    "Röntgen beställd.",
    "Avvaktar odlingssvar.",
    "Inte aktuellt med operation.",
    "Dietistkontakt erbjuden.",
    "Utsätter NSAID; paracetamol i stället.",
)
EPI_REASON = (
    "Inlagd för samhällsförvärvad pneumoni.",
    "Inkom med bröstsmärta; hjärtinfarkt uteslöts.",
    "Inlagd för förmaksflimmer med snabb kammarfrekvens.",
    "Höftfraktur efter fall i hemmet.",
    "Inlagd för hjärtsvikt med tilltagande ödem.",
    "Kom in med buksmärta och feber.",
    "Inlagd för pyelonefrit.",
    "Inlagd för KOL-exacerbation.",
    "Planerad inläggning för total knäplastik.",
    "Inlagd för yrsel och falltendens.",
    "Inlagd för dehydrering och förvirring.",
    "Kom in med akut gallstensanfall.",
)
COURSE = (
    "Behandlades med intravenöst antibiotika med god effekt.",
    "Feberfri från dag två.",
    "CRP sjönk under vårdtiden.",
    "Inga komplikationer under vårdtiden.",
    "Mobiliserades med stöd av fysioterapeut.",
    "Ekokardiografi visade normal vänsterkammarfunktion.",
    "Ingen ischemi vid arbetsprov.",
    "Övergick till peroral behandling dag tre.",
    "Patienten har inte haft några nya episoder av bröstsmärta.",
    "Blodtrycket har varit välreglerat.",
    "Nattlig oro första dygnet, därefter lugn.",
    "Ingen smärta vid utskrivningen.",
    "Diuretika intravenöst med god diures och viktnedgång på två kilo.",
    "Elektrolyter kontrollerade, inga avvikelser.",
    "Konverterade spontant till sinusrytm.",
    "Ingen blödning trots antikoagulantia.",
    "Opererades dag två utan komplikationer.",
    "Sårläkning ua, inga tecken på infektion.",
    "Urinodling växte E. coli, känslig för given behandling.",
    "Äter och dricker bra vid utskrivningen.",
    "Har inte behövt syrgas sedan dag tre.",
    "Ingen ytterligare yrsel på avdelningen.",
    "Vätska intravenöst med snabb förbättring.",
    "Förvirringen gick i regress.",
    "Bedömd av arbetsterapeut; behöver rollator.",
    "Teamträff genomförd; hemgång med utökad hemtjänst.",
    "Inga nytillkomna neurologiska symtom.",
    "Ultraljud buk visade gallsten, ingen kolecystit.",
    "Laboratorieprover vid utskrivningen utan anmärkning.",
    "Negativt covid-test.",
    'Pat. uttrycker "vill hem så fort som möjligt"; informerad om planen.',
    "Smärtlindring med paracetamol räckte; inga opioider behövdes.",
)
MEDS = (
    "Inga ändringar i läkemedelslistan.",
    "Nyinsatt: paracetamol 1 g vid behov, högst fyra gånger dagligen.",
    "Warfarin utsatt; apixaban 5 mg två gånger dagligen insatt.",
    "Furosemid ökat till 40 mg dagligen.",
    "Antibiotika avslutas efter tio dagars behandling.",
    "Metoprolol insatt, 50 mg dagligen.",
    "Inga nya läkemedel.",
    "Utsatt: ibuprofen, på grund av njurfunktionen.",
    "Läkemedelsgenomgång gjord; inga interaktioner.",
    "Fortsatt behandling med inhalationssteroid.",
)
FOLLOWUP = (
    "Återbesök på mottagningen om sex veckor.",
    "Uppföljning i primärvården.",
    "Ingen planerad uppföljning.",
    "Kontroll av CRP och blodstatus på vårdcentralen om en vecka.",
    "Röntgenkontroll om sex veckor.",
    "Telefonuppföljning av sjuksköterska om två veckor.",
    "Kontroll av elektrolyter och kreatinin om en vecka.",
    "Återbesök hos ortoped för suturtagning.",
    "Åter vid försämring eller nya symtom.",
    "Remiss skickad till hemsjukvården.",
)
DAG_CURRENT = (
    "Har sovit gott i natt.",
    "Ingen smärta i dag.",
    "Feberfri sedan igår.",
    "Mår bättre, äter och dricker.",
    "Illamående, har inte kräkts.",
    "Har varit uppe och gått i korridoren.",
    "Har inte haft avföring sedan inläggningen.",
    "Orolig under natten, fick extra dos.",
    "Inga nya besvär.",
    "Andas lättare i dag.",
    "Klagar över smärta i operationssåret.",
    "Anhöriga har varit på besök.",
    "Urinkateter avvecklad, kissar spontant.",
    "Saturation stabil utan syrgas.",
    'Säger "mycket bättre än igår"; ingen andnöd.',
    "Har ätit frukost utan problem.",
)
OP_DIAGNOSIS = (
    "Akut appendicit.",
    "Ljumskbråck höger sida.",
    "Symtomgivande gallsten.",
    "Primär artros i vänster knä.",
    "Distal radiusfraktur vänster.",
    "Lateral malleolfraktur höger.",
    "Karpaltunnelsyndrom höger.",
    "Navelbråck.",
    "Menisklesion höger knä.",
    "Höftledsartros höger.",
)
OP_NAME = (
    "Laparoskopisk appendektomi.",
    "Ljumskbråcksplastik enligt Lichtenstein.",
    "Laparoskopisk kolecystektomi.",
    "Total knäplastik vänster.",
    "Öppen reposition och plattfixation.",
    "Karpaltunnelklyvning.",
    "Artroskopi höger knä med partiell meniskresektion.",
    "Navelbråcksplastik med nät.",
    "Total höftplastik höger.",
    "Osteosyntes med skruvar.",
)
OP_ANAESTHESIA = (
    "Generell anestesi.",
    "Spinalanestesi.",
    "Lokalbedövning.",
    "Plexusblockad.",
    "Generell anestesi och lokal infiltration.",
)
OP_STORY = (
    "Sedvanlig desinfektion och draping.",
    "Time-out genomförd.",
    "Ryggläge.",
    "Antibiotikaprofylax given före incision.",
    "Incision i höger fossa iliaca.",
    "Appendix identifieras, inflammerad men inte perforerad.",
    "Ingen fri vätska i buken.",
    "Mesoappendix delas med diatermi.",
    "Appendixbasen ligeras med två loopar.",
    "Hemostas kontrolleras, inga blödningar.",
    "Huden sluts med intrakutan sutur.",
    "Inga komplikationer peroperativt.",
    "Blödning under 50 ml.",
    "Preparatet skickas för PAD.",
    "Kompresser och instrument räknade, antalet stämmer.",
    "Ingen skada på omgivande strukturer.",
    "Gallblåsan friläggs från leverbädden utan problem.",
    "Cystikusgången klipps med tre clips.",
    "Bråcksäcken frias och reponeras.",
    "Nätet fixeras med fortlöpande sutur.",
    "Blodtomt fält med manschett på överarmen.",
    "Frakturen reponeras under genomlysning.",
    "Plattan fixeras med sex skruvar, god position.",
    "Ingen intraartikulär skruv vid genomlysning.",
    "Ledytorna prepareras; protesen i god position.",
    "Leden är stabil i alla riktningar.",
    "Subkutant dränage läggs.",
    "Ingen nervpåverkan noteras.",
    "Operationen förlöper utan anmärkning.",
    "Patienten väcks och extuberas utan problem.",
    "Förband enligt rutin.",
    "Lokalbedövning i såret – totalt 20 ml.",
)
OP_POST = (
    "Sedvanlig postoperativ kontroll.",
    "Får belasta fullt.",
    "Avlastning i sex veckor.",
    "Inget antibiotika postoperativt.",
    "Suturtagning på vårdcentralen om tio dagar.",
    "Trombosprofylax i tio dagar.",
    "Hemgång samma dag om opåverkad.",
    "Smärtlindring enligt ordination.",
)
PC_REASON = (
    "Hosta sedan en vecka.",
    "Halsont och feber i tre dagar.",
    "Kontroll av blodtryck.",
    "Ont i ländryggen efter lyft.",
    "Sveda vid miktion.",
    "Uppföljning av diabetes.",
    "Yrsel sedan två dagar.",
    "Utslag på armarna.",
    "Trötthet sedan en månad.",
    "Förnyelse av recept.",
    "Öronvärk sedan igår.",
    "Hälsokontroll.",
    "Ont i knät efter en löprunda.",
    "Nedstämdhet och sömnsvårigheter.",
    'Söker för "konstig hjärtklappning"; inga andra besvär.',
)
REF_ABOUT = (
    "hjärtklappning.",
    "misstänkt förmaksflimmer.",
    "kronisk hosta.",
    "dyspepsi.",
    "blod i avföringen.",
    "knäsmärta.",
    "förhöjt PSA.",
    "struma.",
    "misstänkt sömnapné.",
    "anemi.",
    "hudförändring på ryggen.",
)
REF_QUESTION = (
    "Förmaksflimmer?",
    "Astma? KOL?",
    "Ulcus?",
    "Malignitet?",
    "Indikation för operation?",
    "Behandlingsförslag?",
    "Sömnapné?",
    "Orsak till anemin?",
)
REF_FINDINGS = (
    "Patienten undersökt på mottagningen.",
    "Långtids-EKG visar sinusrytm utan arytmier.",
    "Ekokardiografi utan anmärkning.",
    "Inga tecken på förmaksflimmer.",
    "Spirometri visar normala värden.",
    "Ingen reversibilitet efter bronkdilatation.",
    "Gastroskopi: normal slemhinna, inga sår.",
    "Koloskopi utan polyper eller tumör.",
    "Blodstatus normalt; negativt HP-test.",
    "PSA 6,2, palpatoriskt ingen misstanke om malignitet.",
    "MR prostata visar inga misstänkta förändringar.",
    "Ultraljud tyreoidea: multinodös struma utan misstänkta knölar.",
    "Sömnregistrering visar lätt sömnapné.",
    "Järnbrist utan tecken till blödning.",
    "Dermatoskopi: benignt nevus, ingen åtgärd.",
    "Artroskopi bedöms inte indicerad.",
    "Ingen operationsindikation i nuläget.",
    "Laboratorieprover utan anmärkning.",
    "Ingen hjärtsvikt.",
    "Lätt förhöjt blodtryck vid besöket, 145/90.",
    "Ingen malignitet påvisad.",
    "Biopsi visade inga atypiska celler.",
    "Har inte haft några symtom under registreringen.",
    'Pat. beskriver en "fladdrande" känsla i bröstet; korrelerar inte med EKG.',
    "Fysioterapi har gett god effekt.",
    "Inga tecken på inflammatorisk ledsjukdom.",
    "Röntgen visar lindrig artros, ingen fraktur.",
    "Normal njurfunktion.",
)
REF_ADVICE = (
    "Ingen ytterligare utredning behövs.",
    "Åter till remittenten.",
    "Ny remiss vid nya symtom.",
    "Fortsatt behandling i primärvården.",
    "Förslag: protonpumpshämmare i fyra veckor.",
    "CPAP-behandling erbjuden.",
    "Järntillskott i tre månader; kontroll av Hb därefter.",
    "Ingen kontroll hos oss.",
    "Kontroll av PSA om sex månader i primärvården.",
    "Fysioterapi rekommenderas.",
)
#: plain one-line texts without ``;``, ``"`` or line breaks (the text of a note whose line is broken)
PLAIN = (
    "Kontroll utan anmärkning.",
    "Inga nya besvär sedan förra besöket.",
    "Ingen förändring, fortsatt samma behandling.",
    "Provsvar normala, ingen åtgärd.",
)

POOLS: dict[str, tuple[str, ...]] = {
    "rtg_exam": RTG_EXAM,
    "rtg_question": RTG_QUESTION,
    "rtg_compare": RTG_COMPARE,
    "rtg_findings": RTG_FINDINGS,
    "rtg_conclusion": RTG_CONCLUSION,
    "anamnes": ANAMNES,
    "status": STATUS,
    "assessment": ASSESSMENT,
    "plan": PLAN,
    "epi_reason": EPI_REASON,
    "course": COURSE,
    "meds": MEDS,
    "followup": FOLLOWUP,
    "day": DAG_CURRENT + COURSE,
    "op_diagnosis": OP_DIAGNOSIS,
    "op_name": OP_NAME,
    "op_anaesthesia": OP_ANAESTHESIA,
    "op_story": OP_STORY,
    "op_post": OP_POST,
    "pc_reason": PC_REASON,
    "pc_history": ANAMNES + DAG_CURRENT[:8],
    "ref_about": REF_ABOUT,
    "ref_question": REF_QUESTION,
    "ref_findings": REF_FINDINGS,
    "ref_advice": REF_ADVICE,
}

# A name line: (text before the name, text after it, whose name: "f" female, "m" male, "" either).
NAME_LINES = (
    ("Samtal med dottern ", " som informerats om planen.", "f"),
    ("Samtal med sonen ", " per telefon.", "m"),
    ("Anhörig: maken ", ", som vill bli kontaktad vid förändring.", "m"),
    ("Anhörig: hustrun ", ".", "f"),
    ("Bedömd tillsammans med Dr. ", ".", ""),
    ("Dikterat av Dr. ", ".", ""),
    ("Diskuterad med överläkare ", ", som instämmer i planen.", ""),
    ("Kontaktsjuksköterska: ", ".", ""),
    ("Granskad av ", ".", ""),
    ("Remitterande läkare: Dr. ", ".", ""),
)


@dataclass(frozen=True)
class Section:
    """One section of a note kind: its heading, its sentence pool and how many sentences it holds."""

    heading: str  # written before the first sentence ("" for none)
    pool: str
    lo: int  # sentences, at least (0: the section may be left out)
    hi: int  # sentences, at most (the growing section: at least ``lo``, then as many as the length needs)
    own_line: bool = False  # the heading stands on a line of its own
    p_break: float = 0.15  # chance that a sentence ends its line
    grow: bool = False  # the section that grows to the note's length (one per kind)


_S = Section
TEMPLATES: dict[str, tuple[Section, ...]] = {
    "RTG": (
        _S("Undersökning:", "rtg_exam", 1, 1),
        _S("Frågeställning:", "rtg_question", 1, 1),
        _S("Jämförelse:", "rtg_compare", 0, 1),
        _S("Fynd:", "rtg_findings", 2, 6, own_line=True, p_break=0.35, grow=True),
        _S("Bedömning:", "rtg_conclusion", 1, 2),
    ),
    "EPI": (
        _S("Inskrivningsorsak:", "epi_reason", 1, 1),
        _S("Anamnes:", "anamnes", 2, 5, own_line=True, p_break=0.2),
        _S("Status vid inskrivning:", "status", 2, 5, own_line=True, p_break=0.6),
        _S("Förlopp:", "course", 2, 6, own_line=True, p_break=0.2, grow=True),
        _S("Läkemedel:", "meds", 1, 3, own_line=True, p_break=0.5),
        _S("Uppföljning:", "followup", 1, 2),
    ),
    "DAG": (
        _S("Aktuellt:", "day", 1, 3, p_break=0.2, grow=True),
        _S("Status:", "status", 2, 5, p_break=0.4),
        _S("Bedömning:", "assessment", 1, 2),
        _S("Planering:", "plan", 1, 3, p_break=0.3),
    ),
    "OPB": (
        _S("Preoperativ diagnos:", "op_diagnosis", 1, 1),
        _S("Operation:", "op_name", 1, 1),
        _S("Anestesi:", "op_anaesthesia", 1, 1),
        _S("Operationsberättelse:", "op_story", 3, 8, own_line=True, p_break=0.25, grow=True),
        _S("Postoperativ ordination:", "op_post", 1, 3, own_line=True, p_break=0.5),
    ),
    "journal": (
        _S("Besöksorsak:", "pc_reason", 1, 1),
        _S("Anamnes:", "pc_history", 1, 4, p_break=0.2, grow=True),
        _S("Status:", "status", 2, 5, own_line=True, p_break=0.6),
        _S("Bedömning:", "assessment", 1, 2),
        _S("Åtgärd:", "plan", 1, 3, p_break=0.3),
    ),
    "referral-answer": (
        _S("Remissvar avseende", "ref_about", 1, 1),
        _S("Frågeställning:", "ref_question", 0, 1),
        _S("Undersökning och fynd:", "ref_findings", 2, 6, own_line=True, p_break=0.3, grow=True),
        _S("Bedömning:", "assessment", 1, 2),
        _S("Rekommendation:", "ref_advice", 1, 2),
    ),
}

# ------------------------------------------------------------------------------------------------
# what follows an entry: (kind of gap) x (line ending) x (trailing whitespace before a line break)

NONE, SPACE, BREAK, BLANK = 0, 1, 2, 3  # nothing, a space, a line break, a blank line
_TRAIL = ("", " ", "  ", "\t", " \t")  # 0: clean; 1-4: what a messy note leaves at a line's end
_LEAD_TAIL = (("", "\n", "\n\n", "  \n", "\n\t\n"), ("", "\n", "\n\n", "\n  ", "  \n\n"))  # start, end


def _gaps() -> tuple[list[str], list[int], np.ndarray]:
    """Every gap text, its length after normalisation, and the table [kind, crlf, trail] -> gap."""
    texts: list[str] = []
    norm: list[int] = []
    table = np.zeros((4, 2, len(_TRAIL)), dtype=np.int64)
    for kind in (NONE, SPACE, BREAK, BLANK):
        for crlf, nl in enumerate(("\n", "\r\n")):
            for t, trail in enumerate(_TRAIL):
                text = ("", " ", trail + nl, trail + nl + trail + nl)[kind]
                if text not in texts:
                    texts.append(text)
                    norm.append((0, 1, 1, 2)[kind])
                table[kind, crlf, t] = texts.index(text)
    return texts, norm, table


@dataclass(frozen=True)
class _Tables:
    vocab: pl.Series  # entry i * n_gaps + g: item i followed by gap g
    n_gaps: int
    gap: np.ndarray  # [kind, crlf, trail] -> gap index
    item_len: np.ndarray  # characters of each item (after normalisation)
    item_len32: np.ndarray  # the same plus one (the gap after it), 32 bits
    pool_off: np.ndarray  # first item of each pool
    pool_cnt: np.ndarray
    pool_total: np.ndarray  # characters of all of a pool's items
    steps: np.ndarray  # [pool, i]: the steps coprime to the pool's size
    n_steps: np.ndarray
    head: np.ndarray  # [kind, section] -> heading item
    head_len: np.ndarray
    pool: np.ndarray  # [kind, section] -> pool
    lo: np.ndarray
    hi: np.ndarray
    own_line: np.ndarray
    p_break: np.ndarray
    grow: np.ndarray  # [kind] -> the growing section
    lead: np.ndarray  # [crlf, variant] -> item
    tail: np.ndarray


_CACHE: dict[str, _Tables] = {}


def _tables() -> _Tables:
    """The compiled corpus (made once)."""
    if "t" in _CACHE:
        return _CACHE["t"]
    items: list[str] = []
    norm: list[int] = []
    pool_names = list(POOLS)
    off, cnt = [], []
    for name in pool_names:
        off.append(len(items))
        cnt.append(len(POOLS[name]))
        items += POOLS[name]
        norm += [len(s) for s in POOLS[name]]
    n_sections = max(len(t) for t in TEMPLATES.values()) + 1  # + the name line
    k = len(KINDS)
    head = np.zeros((k, n_sections), dtype=np.int64)
    pool = np.zeros((k, n_sections), dtype=np.int64)
    lo = np.zeros((k, n_sections), dtype=np.int64)
    hi = np.zeros((k, n_sections), dtype=np.int64)
    own_line = np.zeros((k, n_sections), dtype=bool)
    p_break = np.zeros((k, n_sections))
    grow = np.zeros(k, dtype=np.int64)
    empty = len(items)
    items.append("")
    norm.append(0)
    for ki, kind in enumerate(KINDS):
        head[ki, :] = empty
        for s, sec in enumerate(TEMPLATES[kind]):
            head[ki, s] = len(items)
            items.append(sec.heading)
            norm.append(len(sec.heading))
            pool[ki, s] = pool_names.index(sec.pool)
            lo[ki, s], hi[ki, s] = sec.lo, sec.hi
            own_line[ki, s], p_break[ki, s] = sec.own_line, sec.p_break
            if sec.grow:
                grow[ki] = s
    lead = np.zeros((2, len(_LEAD_TAIL[0])), dtype=np.int64)
    tail = np.zeros((2, len(_LEAD_TAIL[1])), dtype=np.int64)
    for crlf in (0, 1):
        for table, texts in ((lead, _LEAD_TAIL[0]), (tail, _LEAD_TAIL[1])):
            for v, text in enumerate(texts):
                table[crlf, v] = len(items)
                items.append(text.replace("\n", "\r\n") if crlf else text)
                norm.append(0)
    gap_texts, _, gap = _gaps()
    vocab = pl.Series([i + g for i in items for g in gap_texts], dtype=pl.String)
    sizes = np.array(cnt, dtype=np.int64)
    steps = [[x for x in range(1, max(m, 2)) if math.gcd(x, m) == 1] or [1] for m in sizes.tolist()]
    step_table = np.ones((len(sizes), max(len(x) for x in steps)), dtype=np.int64)
    for i, coprime in enumerate(steps):
        step_table[i, : len(coprime)] = coprime
    item_len = np.array(norm, dtype=np.int64)
    pool_off = np.array(off, dtype=np.int64)
    t = _Tables(
        vocab=vocab,
        n_gaps=len(gap_texts),
        gap=gap,
        item_len=item_len,
        item_len32=(item_len + 1).astype(np.int32),
        pool_off=pool_off,
        pool_cnt=sizes,
        pool_total=np.array([item_len[o : o + c].sum() for o, c in zip(off, cnt, strict=True)], dtype=np.int64),
        steps=step_table,
        n_steps=np.array([len(s) for s in steps], dtype=np.int64),
        head=head,
        head_len=item_len[head],
        pool=pool,
        lo=lo,
        hi=hi,
        own_line=own_line,
        p_break=p_break,
        grow=grow,
        lead=lead,
        tail=tail,
    )
    _CACHE["t"] = t
    return t


def corpus() -> list[str]:
    """Every sentence, heading and name-line text a note can hold (for checks of the character set)."""
    out = [s for p in POOLS.values() for s in p] + [s.heading for t in TEMPLATES.values() for s in t]
    out += [a for a, _, _ in NAME_LINES] + [b for _, b, _ in NAME_LINES] + list(PLAIN)
    return out + list(V.FAMILY_NAMES) + list(V.FEMALE_GIVEN) + list(V.MALE_GIVEN)


def _name_lines(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` lines naming a relative or a colleague, e.g. "Samtal med dottern Karin Lindqvist som …"."""
    which = rng.integers(0, len(NAME_LINES), n)
    gender = np.array([g for _, _, g in NAME_LINES])[which]
    nf, nm = len(V.FEMALE_GIVEN), len(V.MALE_GIVEN)
    male = (gender == "m") | ((gender == "") & (rng.random(n) < 0.5))
    given = np.where(male, nf + rng.integers(0, nm, n), rng.integers(0, nf, n))
    family = rng.integers(0, len(V.FAMILY_NAMES), n)
    frame = pl.DataFrame(
        {
            "a": pl.Series([a for a, _, _ in NAME_LINES]).gather(which),
            "g": pl.Series(V.FEMALE_GIVEN + V.MALE_GIVEN).gather(given),
            "f": pl.Series(V.FAMILY_NAMES).gather(family),
            "b": pl.Series([b for _, b, _ in NAME_LINES]).gather(which),
        }
    )
    return frame.select(pl.concat_str("a", "g", pl.lit(" "), "f", "b")).to_series()


def build(
    rng: np.random.Generator,
    kind: np.ndarray,
    crlf: Any,
    *,
    long_share: float = LONG_SHARE,
    messy_share: float = MESSY_SHARE,
    name_share: float = NAME_SHARE,
) -> pl.Series:
    """A note text for each element of ``kind`` (an index into ``KINDS``).

    Line breaks are CRLF where ``crlf`` holds (a bool or one per note), else LF. Made ``BATCH``
    notes at a time, so the working arrays stay small however many notes there are.
    """
    kind = np.asarray(kind, dtype=np.int64)
    n = len(kind)
    crlf = np.broadcast_to(np.asarray(crlf, dtype=bool), (n,)).astype(np.int64)
    shares = (long_share, messy_share, name_share)
    parts = [_build(rng, kind[i : i + BATCH], crlf[i : i + BATCH], *shares) for i in range(0, n, BATCH)]
    if not parts:
        return pl.Series([], dtype=pl.String)
    return pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0]


def _build(
    rng: np.random.Generator,
    kind: np.ndarray,
    crlf: np.ndarray,
    long_share: float,
    messy_share: float,
    name_share: float,
) -> pl.Series:
    t = _tables()
    n = len(kind)
    n_sec = t.head.shape[1]
    name_col = n_sec - 1
    rows = np.arange(n)

    long = rng.random(n) < long_share
    messy = rng.random(n) < messy_share
    mode = rng.integers(1, 8, n)  # bits: trailing whitespace, blank lines at the start, at the end
    trailing = messy & (mode & 1 > 0)
    lead_v = np.where(messy & (mode & 2 > 0), rng.integers(1, t.lead.shape[1], n), 0)
    tail_v = np.where(messy & (mode & 4 > 0), rng.integers(1, t.tail.shape[1], n), 0)
    named = rng.random(n) < name_share
    blank_between = rng.random(n) < 0.4
    normal = np.clip(np.exp(rng.normal(math.log(700), 0.55, n)), 200, 2_300)
    target = np.where(long, rng.integers(4_100, 12_600, n), normal).astype(np.int64)

    # sentences per section, and each section's (base, step) walk through its pool
    lo, hi, pool = t.lo[kind], t.hi[kind], t.pool[kind]
    count = lo + (rng.random((n, n_sec)) * (hi - lo + 1)).astype(np.int64)
    count[:, name_col] = named
    i32 = np.int32  # the walk in 32 bits: pools and sentence counts are small
    cnt = t.pool_cnt[pool].astype(i32)
    base = (rng.random((n, n_sec)) * cnt).astype(i32)
    step = t.steps[pool, (rng.random((n, n_sec)) * t.n_steps[pool]).astype(np.int64)].astype(i32)
    off = t.pool_off[pool].astype(i32)
    names = _name_lines(rng, int(named.sum()))
    name_len = np.zeros(n, dtype=np.int64)
    name_len[named] = names.str.len_chars().to_numpy()

    # the growing section takes as many sentences as the length drawn needs (each with its gap)
    g = t.grow[kind]
    fixed = count.copy()
    fixed[rows, g] = 0
    fixed[:, name_col] = 0
    pair = np.repeat(np.arange(n * n_sec), fixed.ravel())
    j = (np.arange(len(pair)) - (np.cumsum(fixed.ravel()) - fixed.ravel())[pair]).astype(i32)
    item = _walk(off, base, step, cnt, pair, j)
    length = np.bincount(pair // n_sec, weights=t.item_len[item] + 1, minlength=n).astype(np.int64)
    length += ((count > 0) * (t.head_len[kind] + 1)).sum(axis=1) - (count[:, name_col] > 0) + name_len
    gc = cnt[rows, g]
    need = np.maximum(target - length, 0)
    cycle = t.pool_total[pool[rows, g]] + gc
    full = need // cycle
    rest = need - full * cycle
    jj = np.arange(int(gc.max()), dtype=i32)[None, :]
    walk = off[rows, g][:, None] + (base[rows, g][:, None] + jj * step[rows, g][:, None]) % gc[:, None]
    cum = np.cumsum(t.item_len32[walk], axis=1)
    more = (cum < rest[:, None]).sum(axis=1) + (rest > 0)
    count[rows, g] = np.maximum(full * gc + more, lo[rows, g])
    last = n_sec - 1 - np.argmax((count > 0)[:, ::-1], axis=1)  # the last section the note holds

    # the entries of every note in order: the start, per section its heading and sentences, the end
    per = np.zeros((n, n_sec + 2), dtype=np.int64)
    per[:, 0] = 1
    per[:, 1:-1] = np.where(count > 0, count + 1, 0)
    per[:, -1] = 1
    flat = per.ravel()
    first = (np.cumsum(flat) - flat).reshape(n, n_sec + 2)  # position of each part's first entry
    entry = np.empty(int(flat.sum()), dtype=i32)
    ng, gap = t.n_gaps, t.gap.ravel().astype(i32)

    def gap_of(kind_: Any, cr: Any, trail: Any) -> Any:
        return gap[(kind_ * 2 + cr) * len(_TRAIL) + trail]

    def trail_of(of_note: np.ndarray) -> np.ndarray:
        out = np.zeros(len(of_note), dtype=np.int64)
        messy_at = np.flatnonzero(trailing[of_note])
        out[messy_at] = rng.integers(1, len(_TRAIL), len(messy_at))
        return out

    entry[first[:, 0]] = t.lead[crlf, lead_v] * ng
    entry[first[:, -1]] = t.tail[crlf, tail_v] * ng
    hn, hs = np.nonzero(count > 0)
    hk = kind[hn]
    h_kind = np.where(hs == name_col, NONE, np.where(t.own_line[hk, hs], BREAK, SPACE))
    entry[first[hn, hs + 1]] = t.head[hk, hs] * ng + gap_of(h_kind, crlf[hn], trail_of(hn))

    cflat = count.ravel()
    sp = np.repeat(np.arange(n * n_sec), cflat)  # the section (note * n_sec + section) of each sentence
    j = (np.arange(len(sp)) - (np.cumsum(cflat) - cflat)[sp]).astype(i32)
    sn = sp // n_sec
    item = _walk(off, base, step, cnt, sp, j)
    end_kind = np.where(
        np.arange(n_sec)[None, :] == last[:, None], NONE, np.where(blank_between, BLANK, BREAK)[:, None]
    )
    mid_kind = np.where(rng.random(len(sp)) < t.p_break[kind].ravel()[sp], BREAK, SPACE)
    s_kind = np.where(j == cflat[sp] - 1, end_kind.ravel()[sp], mid_kind)
    s_entry = item * ng + gap_of(s_kind, crlf[sn], trail_of(sn))
    is_name = sp % n_sec == name_col
    s_entry[is_name] = len(t.vocab) + np.arange(int(is_name.sum()))  # the name lines, in note order
    entry[first[:, 1:-1].ravel()[sp] + 1 + j] = s_entry
    vocab = pl.concat([t.vocab, names]) if len(names) else t.vocab
    return _join(vocab, entry, np.cumsum(per.sum(axis=1)))


def _walk(off: np.ndarray, base: np.ndarray, step: np.ndarray, cnt: np.ndarray, sec: np.ndarray, j: Any) -> Any:
    """The item of the ``j``-th sentence of each flat section index ``sec``."""
    return off.ravel()[sec] + (base.ravel()[sec] + j * step.ravel()[sec]) % cnt.ravel()[sec]


def _join(vocab: pl.Series, entry: np.ndarray, ends: np.ndarray) -> pl.Series:
    """The vocabulary entries in order, concatenated: note ``i`` is entries ``ends[i-1]`` to ``ends[i]``.

    One Arrow take makes all the text in one buffer; the notes are slices of it (new offsets only).
    """
    arr: Any = vocab.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string()).take(pa.array(entry, type=pa.int64()))
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    starts = off[np.concatenate([[0], ends])]
    joined = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(starts.astype(np.int64)), data)
    return pl.Series(pl.from_arrow(joined))
