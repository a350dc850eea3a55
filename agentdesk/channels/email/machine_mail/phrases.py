"""What machine mail says: sender names, subjects and body texts, by MTA family and by language.

Every pattern here is applied only to a message that a cheap test already made a candidate
(classifier.py), so they may be long; what matters is that none of them matches what a person
writes to a help desk. The families and their wording follow sisimai's per-MTA modules (BSD-2):
each module there keys on the same kind of fixed sentence an MTA writes into its notices.
"""

from __future__ import annotations

import re

_I = re.IGNORECASE

# --- matching many phrases fast --------------------------------------------------------------

_META = set("\\[](){}|?*+.^$")


def _top_level_branches(source: str) -> list[str]:
    branches, depth, start, i = [], 0, 0, 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = source.index("]", i + 2 if source[i + 1 : i + 2] in ("]", "^") else i + 1) + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            branches.append(source[start:i])
            start = i + 1
        i += 1
    branches.append(source[start:])
    return branches


def _required_words(branch: str) -> list[str]:
    """Literal runs every match of `branch` contains (outside groups, classes and quantifiers)."""
    words, current, depth, i = [], "", 0, 0
    while i < len(branch):
        char = branch[i]
        if char == "\\" or char in "[(){}|?*+.^$" or depth:
            if char == "\\":
                i += 1  # an escape ends the run (\s, \b, \d: no literal)
            elif char == "[":
                i = branch.index("]", i + 2 if branch[i + 1 : i + 2] in ("]", "^") else i + 1)
            elif char == "{":
                i = branch.index("}", i)
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            if char in "?*{" and current:
                current = current[:-1]  # the last character is optional
            if current:
                words.append(current)
            current = ""
        else:
            current += char
        i += 1
    if current:
        words.append(current)
    return words


class Phrases:
    """Many alternatives of one regex, matched against lower-cased text.

    Python's regex engine tries every alternative at every position, so one pattern of a
    hundred sentences reads a text at about a microsecond a character. Here each alternative is
    keyed by its longest literal word, and only the alternatives whose word occurs in the text
    (a substring test, fast) are run. Texts must be lower-cased by the caller; the patterns are
    written in lower case and compiled without IGNORECASE.
    """

    def __init__(self, source: str, flags: int = 0) -> None:
        self.pattern = re.compile(source, flags)
        groups: dict[str, list[str]] = {}
        for branch in _top_level_branches(source):
            words = [w for w in _required_words(branch) if len(w.strip()) >= 3]
            key = max(words, key=len) if words else ""
            groups.setdefault(key, []).append(branch)
        self._table = [(key, re.compile("|".join(branches), flags)) for key, branches in groups.items()]

    def search(self, text: str, pos: int = 0) -> re.Match | None:
        """The earliest match in `text` from `pos`, or None."""
        best = None
        for key, pattern in self._table:
            if key and key not in text:
                continue
            found = pattern.search(text, pos, best.start() + 1 if best else len(text))
            if found and (best is None or found.start() < best.start()):
                best = found
        return best


# --- senders -------------------------------------------------------------------------------

# Local parts, compared with "-", "_" and "." taken out and lower-cased.
# Those that only ever send delivery notices: any mail from them is a bounce.
DAEMON_LOCALS = frozenset({"mailerdaemon", "maildaemon", "mdaemon", "smtpdaemon"})
# Those that send notices, but can also be a person (a postmaster answering).
NOTICE_LOCALS = frozenset(
    {
        "postmaster",
        "maildelivery",
        "maildeliverysystem",
        "maildeliverysubsystem",
        "maildeliveryservice",
        "mailadmin",
        "mailadministrator",
        "mailrouter",
        "mailsystem",
        "mailserver",
        "bounce",
        "bounces",
        "returnedmail",
        "nondelivery",
        "ndr",
        "dsn",
        "mailrobot",
        "mailbot",
        "mxdaemon",
        "smtpgateway",
        "internetmaildelivery",
        "mta",
        "msexchange",
        "deliverystatus",
        "deliverystatusnotification",
    }
)
# Those that send nothing a person wrote: notices, yes, but also newsletters and receipts, so
# they make a message a candidate and never a bounce on their own.
MACHINE_LOCALS = frozenset(
    {
        "noreply",
        "donotreply",
        "noresponse",
        "autoreply",
        "autoresponder",
        "automailer",
        "vacation",
        "notification",
        "notifications",
        "notify",
        "alert",
        "alerts",
        "system",
        "daemon",
        "root",
        "admin",
        "administrator",
        "abuse",
        "spam",
        "antispam",
        "quarantine",
        "security",
        "virus",
        "viruswall",
        "filter",
        "majordomo",
        "listserv",
        "sympa",
        "mailman",
        "ezmlm",
    }
)
_MACHINE_SUFFIXES = ("-admin", "-owner", "-request", "-bounce", "-bounces", "-ctl")
_SEPARATORS = str.maketrans("", "", "-_.")
# A first look at a display name before the name patterns below: most names have none of these.
_NAME_GATE = re.compile(
    r"mail|post|admin|deliver|system|daemon|outlook|server|domino|groupwise|notes|service|courier|barracuda"
    r"|symantec|messagelabs|mimecast|proofpoint|sophos|postini|ironport|mcafee|trend|spam|filter|gateway"
)


def sender_class(address: str, name: str) -> int:
    """0: a person as far as we can tell; 1: a machine sender (no-reply, list manager, ...);
    2: a notice sender (postmaster, mail delivery system); 3: a mailer daemon."""
    local = address.rpartition("@")[0].lower() if "@" in address else address.lower()
    local = local.split("+", 1)[0]
    squashed = local.translate(_SEPARATORS)
    if squashed in DAEMON_LOCALS or (not address and name.lower().replace(" ", "").replace("-", "") in DAEMON_LOCALS):
        return 3
    if squashed in NOTICE_LOCALS or squashed.startswith("msexchange"):
        return 2
    if name:
        lowered = name.lower()
        if _NAME_GATE.search(lowered) and NOTICE_NAME.search(lowered):
            return 2
    if squashed in MACHINE_LOCALS or local.endswith(_MACHINE_SUFFIXES) or local.startswith("owner-"):
        return 1
    return 0


NOTICE_NAME = Phrases(
    r"mail(?:er)?[\s_-]*(?:delivery|daemon)|post\s*master|mail\s+administrator|system\s+administrator"
    r"|mail\s+(?:system|router|server|robot)|delivery\s+(?:status|subsystem|system|notification)"
    r"|internet\s+mail\s+(?:service|delivery)|microsoft\s+outlook|courier\s+mail\s+server|mdaemon"
    r"|groupwise|lotus\s+notes|domino|administrateur|systemadministrator|mailsystem|e-?mail\s+(?:system|service)"
    r"|barracuda|symantec|messagelabs|mimecast|proofpoint|sophos|postini|ironport|mcafee|trend\s*micro"
    r"|spam\s*(?:filter|firewall|gateway)|mail\s*(?:filter|gateway|security)|content\s+filter"
)
# Challenge-response services, by the domain they send from.
CHALLENGE_DOMAINS = (
    "spamarrest.com",
    "boxbe.com",
    "bluebottle.com",
    "mailblocks.com",
    "digiportal.com",
    "sendio.com",
    "earthlink.net",
    "qurb.com",
    "spamlion.com",
    "choicemail.com",
    "mailwasher.net",
    "vanquish.com",
    "totalblock.net",
    "tmda.net",
)
# ... and by the name they give in the text of a challenge.
CHALLENGE_VENDOR = re.compile(
    r"spamarrest|spam\s*arrest|boxbe|bluebottle|mailblocks|choicemail|digiportal|sendio|tmda"
    r"|spamblocker|earthlink|qurb|spamlion|mailwasher|vanquish|ask\s+\(active\s+spam\s+killer\)"
    r"|activespamkiller|spamcop|hushmail\s+verify|totalblock|mailfrontier|cleanmymailbox",
    _I,
)

# --- subjects ------------------------------------------------------------------------------

# Words that make a subject worth a closer look. The test is a set lookup per word, so it is
# cheap enough for every message; a hit decides nothing on its own.
SUBJECT_HINT_WORDS = frozenset(
    """
    undeliverable undelivered undeliverd undeliver delivery deliver delivered failure failed fail
    failures returned return returning bounce bounced bounces rejected reject rejection blocked
    delayed delay warning error errors notice notification notify dsn ndr postmaster daemon
    mailer mailbox unknown quota full nondelivery non-delivery nicht unzustellbar zustellbar
    zustellung remis distribué distribue remise entrega entregar entregue entregado recapitare
    consegna onbestelbaar bezorgd levering leverans leverbar toimitus doręczenia nedoručitelná
    недоставленное доставки доставлено
    auto autoreply autoresponse autoresponder automatic automatische automatisch automatique
    automatica automática automático automatico automatiskt automatisk automaattinen
    automatyczna automatyczne automatická automatikus automat automatski samodejni
    otomatik автоматический автоответ автоматична
    office vacation holiday holidays away absence absent leave ooo oof
    abwesenheit abwesenheitsnotiz abwesend urlaub büro ausser außer
    absence congé congés congés vacances absente
    ausencia ausente vacaciones oficina
    assente assenza ferie sede ufficio
    afwezig afwezigheid vakantie kantoor
    ausência férias escritório
    frånvarande frånvaro semester
    fravær fraværende ferie
    poissa poissaolo lomalla
    nieobecność nieobecny urlop biurem
    nepřítomnost nepřítomen dovolená kancelář
    отпуск отсутствую отсутствие
    izin izindeyim yanıt cevap
    verify verification confirm confirmation challenge approval authorization authorize whitelist
    spam
    """.split()
)
# Outlook/Exchange's own prefix for an automatic reply, in the languages it ships in, and the
# phrases people and autoresponders put first: strong enough alone.
AUTO_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)?(?:"
    r"out\s+of\s+(?:the\s+)?office|automatic\s+reply|auto(?:matic)?[\s-]*repl(?:y|ied)|autoreply"
    r"|auto[\s-]*respon(?:se|der)|auto:|away\s+(?:until|from\s+(?:the\s+|my\s+)?(?:office|desk|mail|e-?mail))"
    r"|on\s+(?:vacation|holiday|annual\s+leave|leave)|vacation\s+(?:reply|notice|message|auto\w*)"
    r"|holiday\s+(?:notice|reply|message)|absence\s+(?:notice|message|notification)|i\s+am\s+(?:out|away)"
    r"|ooo\b|oof\b"
    r"|abwesenheitsnotiz|abwesenheit|abwesend|automatische\s+antwort|nicht\s+im\s+b(?:ü|ue)ro"
    r"|au(?:ss|ß)er\s+haus|im\s+urlaub"
    r"|r[ée]ponse\s+automatique|message\s+d'absence|absence\s+du\s+bureau|absent(?:e)?\s+du\s+bureau"
    r"|en\s+cong[ée]s?|en\s+vacances"
    r"|respuesta\s+autom[áa]tica|fuera\s+de\s+(?:la\s+)?oficina|de\s+vacaciones|ausente\s+de\s+la\s+oficina"
    r"|risposta\s+automatica|fuori\s+(?:sede|ufficio)|in\s+ferie"
    r"|automatisch\s+antwoord|afwezigheidsmelding|niet\s+op\s+kantoor|met\s+vakantie|afwezig"
    r"|resposta\s+autom[áa]tica|fora\s+do\s+escrit[óo]rio|de\s+f[ée]rias|em\s+f[ée]rias|aus[êe]ncia"
    r"|automatiskt\s+svar|automatisk\s+svar|autosvar|fr[åa]nvarande|fr[åa]nvaro|frav(?:æ|ae)r(?:ende)?"
    r"|automaattinen\s+vastaus|poissa\s+toimistolta|lomalla|poissaolo"
    r"|odpowied[źz]\s+automatyczna|automatyczna\s+odpowied[źz]|nieobecno[śs][ćc]|poza\s+biurem"
    r"|automatick[áa]\s+odpov[ěe][dď]|automatick[áa]\s+odpove[ďd]|nep[řr][íi]tomnost|mimo\s+kancel[áa]"
    r"|automatikus\s+v[áa]lasz|h[áa]zon\s+k[íi]v[üu]l|r[ăa]spuns\s+automat|automatski\s+odgovor"
    r"|samodejni\s+odgovor|automaatne\s+vastus|autom[āa]tisk[āa]\s+atbilde|automatinis\s+atsakymas"
    r"|автоматический\s+ответ|автоответ|отсутству|вне\s+офиса|в\s+отпуске|автоматична\s+відповідь"
    r"|αυτόματη\s+απάντηση|εκτός\s+γραφείου|otomatik\s+(?:yan[ıi]t|cevap)|ofis\s+d[ıi][şs][ıi]nda"
    r"|trả\s+lời\s+tự\s+động|balasan\s+otomatis|di\s+luar\s+kantor"
    r"|自動応答|自動返信|自動回覆|自动回复|自动答复|自動回復|不在|休暇|외출|자동\s*회신|자동\s*응답|부재|"
    r"תשובה\s+אוטומטית|رد\s+تلقائي|ตอบกลับอัตโนมัติ"
    r")",
    _I,
)
# Subjects that suggest an absence but that a customer may also write ("my vacation booking"):
# they need a vacation text in the body as well.
AUTO_SUBJECT_WEAK = re.compile(
    r"\b(?:vacation|holidays?|absen[ct]e?|away|leave|urlaub|ferien|vacances|cong[ée]s?|vacaciones"
    r"|ferie|vakantie|f[ée]rias|semester|loma|urlop|dovolen[áa]|отпуск|izin|out\s+of\s+town)\b"
    r"|^\s*re\s*:|^\s*aw\s*:|^\s*sv\s*:|^\s*vs\s*:|^\s*antw(?:oord)?\s*:|^\s*odp\s*:|^\s*r\s*:",
    _I,
)
DSN_SUBJECT = Phrases(
    r"undeliver|undelivered|delivery\s+(?:status|failure|failed|notification|report|problem|"
    r"has\s+failed|incomplete|delayed|warning|error|unsuccessful)|returned\s+mail|return(?:ed)?\s+to\s+sender|"
    r"failure\s+notice|mail\s+delivery|could\s+not\s+be\s+delivered|not\s+(?:be\s+)?delivered|non[\s-]?deliver|"
    r"bounce|mail\s+system\s+error|unzustellbar|nicht\s+zustellbar|zustellung\s+fehlgeschlagen|non\s+remis|"
    r"non\s+distribu|[ée]chec\s+de\s+(?:la\s+)?(?:remise|distribution)|no\s+se\s+(?:puede|pudo)\s+entregar|"
    r"impossibile\s+recapitare|non\s+recapitabile|onbestelbaar|niet\s+bezorgd|n[ãa]o\s+(?:foi\s+)?entregue|"
    r"kan\s+inte\s+levereras|kunne\s+ikke\s+leveres|ei\s+voitu\s+toimittaa|nie\s+mo[żz]na\s+dor[ęe]czy[ćc]|"
    r"nedoru[čc]iteln|недоставлен|не\s+доставлен|не\s+может\s+быть\s+доставлен|"
    r"warning:\s+could\s+not\s+send|rejected|message\s+(?:delayed|blocked|not\s+delivered|refused)|"
    r"permanent\s+(?:error|failure)|temporary\s+(?:error|failure)|mailbox\s+(?:full|unavailable|quota)|"
    r"over\s+quota|quota\s+exceeded|delivery\s+error|returned\s+message|failed\s+delivery|failure\s+delivery|"
    r"mail\s+failed|mail\s+failure|returning\s+to\s+sender|could\s+not\s+send|message\s+\S+\s+delayed|"
    r"delayed\s+mail|nondeliverable|blocked\s+by|(?:spam|bulk|content)\s+(?:e-?mail\s+)?filter|spam\s+detected|message\s+status\s+-\s+undeliverable|delivery\s+failure|"
    r"warning\s*-\s*delayed|^\s*warning:|mail\s+could\s+not\s+be\s+delivered|notification\s+d'[ée]tat|"
    r"メールエラー|エラー通知|配信エラー|送信エラー|未送達|不達|退信|退回|投递失败|无法投递|系统退信|반송|전달\s*실패",
)
CHALLENGE_SUBJECT = Phrases(
    r"verif(?:y|ication)\b.*(?:e-?mail|sender|message|address|request)|please\s+(?:verify|confirm)|"
    r"(?:sender|e-?mail|message)\s+verification|confirmation\s+required|\(action\s+required\)|"
    r"authori[sz]ation\s+(?:required|request)|challenge|awaiting\s+(?:your\s+)?(?:verification|confirmation)|"
    r"spam\s*(?:arrest|blocker|protection|filter)|approval\s+required|registration\s+required|"
    r"held\s+for\s+(?:verification|approval)|pending\s+(?:verification|approval)",
)
# A person forwarding or replying to a bounce: never a bounce itself.
FORWARD_SUBJECT = re.compile(
    r"^\s*(?:fwd?|fw|wg|tr|rv|enc|doorst|vs|vl|i|fwd?\s*\[\d+\]|ilt|pd|转发|轉寄|전달)\s*:", _I
)

# --- bodies --------------------------------------------------------------------------------

# Sentences one MTA family writes in every notice it sends: one is enough.
FAMILY_MARKER = Phrases(
    # qmail, and netqmail/vpopmail's variants
    r"this\s+is\s+the\s+qmail-send\s+program|i'm\s+afraid\s+i\s+wasn't\s+able\s+to\s+deliver\s+your\s+message"
    r"|i\s+wasn't\s+able\s+to\s+deliver\s+your\s+message\s+to\s+the\s+following\s+addresses"
    # Exim
    r"|this\s+message\s+was\s+created\s+automatically\s+by\s+mail\s+delivery\s+software\."
    r"|a\s+message\s+that\s+you\s+sent\s+(?:could\s+not\s+be\s+delivered|has\s+not\s+yet\s+been\s+delivered)"
    # sendmail, all ages
    r"|-{3,}\s*transcript\s+of\s+session\s+follows\s*-{3,}|the\s+original\s+message\s+was\s+received\s+at"
    r"|-{3,}\s*the\s+following\s+addresses\s+had\s+(?:permanent\s+)?(?:fatal\s+)?errors\s*-{3,}"
    r"|-{3,}\s*(?:unsent|returned)\s+message\s+follows\s*-{3,}|-{3,}\s*original\s+message\s+follows\s*-{3,}"
    r"|message\s+could\s+not\s+be\s+delivered\s+for\s+\d+\s+(?:hours?|days?)"
    # Postfix
    r"|this\s+is\s+the\s+mail\s+system\s+at\s+host|i'm\s+sorry\s+to\s+have\s+to\s+inform\s+you\s+that\s+your\s+message"
    r"|the\s+mail\s+system\s*\n|delivery\s+to\s+the\s+following\s+recipients?\s+(?:failed|was\s+aborted|has\s+been\s+delayed)"
    # Exchange, Outlook, Office 365
    r"|your\s+message\s+did\s+not\s+reach\s+some\s+or\s+all\s+of\s+the\s+intended\s+recipients"
    r"|delivery\s+has\s+failed\s+to\s+these\s+recipients\s+or\s+(?:groups|distribution\s+lists)"
    r"|the\s+following\s+recipient\(s\)\s+(?:could|cannot)\s+(?:not\s+)?be\s+reached"
    r"|your\s+message\s+(?:wasn't|couldn't\s+be|was\s+not|could\s+not\s+be)\s+delivered"
    r"|diagnostic\s+information\s+for\s+administrators|generating\s+server:"
    r"|delivery\s+is\s+delayed\s+to\s+these\s+recipients|this\s+is\s+an\s+automatically\s+generated\s+delivery\s+status\s+notification"
    # Lotus Domino / Notes
    r"|was\s+not\s+delivered\s+to:.{0,400}?because:|not\s+listed\s+in\s+(?:the\s+)?(?:domino\s+directory|public\s+name\s+&\s+address\s+book)"
    r"|delivery\s+failure\s+report|unable\s+to\s+deliver\s+(?:your\s+)?message\s+to"
    # Novell GroupWise
    r"|the\s+message\s+that\s+you\s+sent\s+was\s+undeliverable\s+to\s+the\s+following|message\s+status\s+-\s+undeliverable"
    r"|possible\s+reason\s+for\s+the\s+failure"
    # MDaemon
    r"|the\s+attached\s+message\s+had\s+(?:permanent\s+)?fatal\s+delivery\s+errors|mdaemon\s+(?:mail\s+server|has\s+)"
    r"|\*{3}\s*error\s*\*{3}|session\s+transcript\s*:"
    # Courier, IMail, Netscape/iPlanet/Sun, Mercury, Kerio, Zimbra, Merak, SmarterMail, Axigen
    r"|this\s+is\s+a\s+delivery\s+status\s+notification\s+from|running\s+the\s+courier\s+mail\s+server"
    r"|this\s+report\s+relates\s+to\s+a\s+message\s+you\s+sent|^\s*original\s+message\s+follows\.?\s*$"
    r"|the\s+following\s+recipients?\s+did\s+not\s+receive\s+(?:this|your)\s+message"
    r"|recipient\s+address\s+rejected|this\s+message\s+is\s+being\s+returned\s+to\s+you"
    r"|message\s+delivery\s+has\s+failed|delivery\s+notification:\s+delivery\s+has\s+failed"
    # big mailbox providers
    r"|delivery\s+to\s+the\s+following\s+recipient\s+failed\s+permanently|delivery\s+to\s+the\s+following\s+recipients?\s+has\s+been\s+delayed"
    r"|sorry,\s+we\s+were\s+unable\s+to\s+deliver\s+your\s+message\s+to\s+the\s+following\s+address"
    r"|message\s+from\s+yahoo!?\s+mail|this\s+message\s+was\s+created\s+automatically\s+by\s+the\s+mail\s+system"
    r"|your\s+message\s+wasn't\s+delivered\s+to|the\s+response\s+from\s+the\s+remote\s+server\s+was"
    r"|the\s+email\s+account\s+that\s+you\s+tried\s+to\s+reach\s+(?:does\s+not\s+exist|is\s+over\s+quota|is\s+disabled)"
    r"|mail\s+(?:system|delivery)\s+at\s+\S+\s+could\s+not\s+deliver"
    # content filters and gateways rejecting spam or viruses
    r"|your\s+(?:e-?mail|message)\s+(?:was|has\s+been)\s+(?:blocked|rejected|quarantined|identified\s+as\s+spam)"
    r"|(?:was|has\s+been)\s+(?:blocked|rejected|quarantined)\s+by\s+(?:our|the)\s+(?:\w+\s+)?(?:spam|bulk|content|e-?mail|anti)"
    r"|message\s+(?:was|has\s+been)\s+(?:blocked|rejected)\s+(?:by|because)|rejected\s+(?:by|as)\s+(?:our\s+)?spam"
    r"|(?:blocked|rejected)\s+(?:due\s+to|for)\s+(?:spam|policy|virus|content)|spam\s+(?:filter|policy)\s+(?:rejected|blocked)"
    r"|blocked\s+using\s+\S+|listed\s+(?:at|on|in)\s+\S*(?:spamhaus|spamcop|sorbs|barracuda|rbl|dnsbl)"
    # delays
    r"|this\s+is\s+a\s+warning\s+message\s+only|you\s+do\s+not\s+need\s+to\s+resend\s+your\s+message"
    r"|will\s+(?:continue|keep)\s+(?:trying|attempting)\s+to\s+deliver|(?:your\s+)?message\s+has\s+not\s+yet\s+been\s+delivered"
    # JSON notices of bulk senders (Amazon SES through SNS, and alike)
    r"|\\?\"notificationtype\\?\"\s*:\s*\\?\"(?:bounce|complaint)\\?\"|\\?\"bouncetype\\?\"\s*:"
    # other languages
    r"|ihre\s+nachricht\s+(?:konnte|wurde)\s+(?:nicht\s+)?(?:zugestellt|an\s+folgende)|nicht\s+zugestellt\s+werden"
    r"|zustellung\s+(?:ist\s+)?fehlgeschlagen|unzustellbar|konnte\s+nicht\s+zugestellt"
    r"|n'a\s+pas\s+pu\s+(?:être|etre)\s+(?:remis|distribu|livr)|impossible\s+de\s+(?:remettre|distribuer|livrer)"
    r"|[ée]chec\s+de\s+(?:la\s+)?(?:remise|distribution|livraison)|non\s+remis"
    r"|no\s+(?:se\s+)?(?:ha\s+)?(?:podido|pudo|puede)\s+(?:ser\s+)?entrega|error\s+en\s+la\s+entrega"
    r"|non\s+(?:è|e')\s+stato\s+possibile\s+(?:consegnare|recapitare)|impossibile\s+(?:consegnare|recapitare)"
    r"|kon\s+niet\s+(?:worden\s+)?(?:bezorgd|afgeleverd)|onbestelbaar"
    r"|n[ãa]o\s+(?:p[ôo]de|foi\s+poss[íi]vel)\s+(?:ser\s+)?entreg|falha\s+(?:na|ao)\s+entreg"
    r"|kunde\s+inte\s+levereras|kunne\s+ikke\s+(?:leveres|afleveres)|ei\s+voitu\s+toimittaa"
    r"|nie\s+(?:mo[żz]na\s+by[łl]o|zosta[łl]a?)\s+dor[ęe]czon|nepoda[řr]ilo\s+se\s+doru[čc]it"
    r"|не\s+(?:может\s+быть|было|удалось)\s+доставл|не\s+доставлено|сообщение\s+не\s+доставлено"
    r"|配信できません|送信できませんでした|宛先不明|届きませんでした|メールボックスが一杯|エラーメッセージ"
    r"|退信|无法投递|投递失败|未能成功发送|無法傳遞|반송|전송\s*실패",
    re.M,
)
# Words of a failure that a person rarely writes together with a machine's signs.
FAILURE_TEXT = Phrases(
    r"could\s+not\s+be\s+delivered|was\s+not\s+delivered|delivery\s+(?:to\s+the\s+following\s+"
    r"recipients?\s+)?(?:has\s+)?failed|undeliverable|permanent(?:ly)?\s+(?:error|fail)|"
    r"user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient|address)|mailbox\s+"
    r"(?:unavailable|full|not\s+found|is\s+full|quota)|over\s+quota|quota\s+exceeded|recipient\s+address\s+rejected|"
    r"message\s+(?:was\s+)?(?:rejected|returned|bounced|blocked)|returned\s+to\s+sender|"
    r"delivery\s+status\s+notification|\b5\.\d{1,3}\.\d{1,3}\b|\b4\.\d{1,3}\.\d{1,3}\b|\b5[45][0-4][ -]|\b4[25][0-2][ -]|"
    r"(?:was|were)\s+rejected|couldn't\s+be\s+delivered|wasn't\s+delivered|"
    r"did\s+not\s+reach\s+the\s+following|recipient\s+name\s+is\s+not\s+recognized|"
    r"no\s+valid\s+recipients|error\s+has\s+occurred\s+while\s+attempting\s+to\s+deliver|"
    r"host\s+unknown|domain\s+(?:not\s+found|does\s+not\s+exist)|relay(?:ing)?\s+denied|"
    r"account\s+(?:has\s+been\s+)?(?:disabled|suspended|closed|inactive)|address\s+(?:rejected|not\s+found)|"
    r"your\s+mail\s+sent\s+on:|retry\s+time(?:out)?\s+exceeded|delivery\s+(?:delayed|attempts)|"
    r"spam|blacklist|blocklist|not\s+(?:a\s+)?member\s+of\s+this\s+(?:mailing\s+)?list|loop\s+alert",
)
# An absence: the first half of an out-of-office text.
VACATION_ABSENCE = Phrases(
    r"\b(?:i\s+am|i'm|i\s+will\s+be|i'll\s+be|i\s+have\s+been|we\s+are)\s+(?:currently\s+|now\s+)?"
    r"(?:out\s+of\s+(?:the\s+)?office|away|on\s+(?:annual\s+|parental\s+|maternity\s+|paternity\s+|sick\s+)?"
    r"(?:leave|vacation|holidays?|a\s+business\s+trip)|out\s+of\s+town|travell?ing|not\s+in\s+the\s+office"
    r"|unavailable|absent|off\s+work)|\bout\s+of\s+(?:the\s+)?office\s+(?:until|till|from|and)"
    r"|\bthis\s+is\s+an\s+auto(?:mated|matic)?[\s-]*(?:reply|response|generated|message|notification)"
    r"|\bauto(?:matic|mated)?[\s-]*(?:reply|response)\b"
    r"|ich\s+bin\s+(?:bis|vom|ab|derzeit|zurzeit|momentan|leider|nicht|im\s+urlaub|au(?:ss|ß)er)"
    r"|abwesend|nicht\s+im\s+b(?:ü|ue)ro|abwesenheit|im\s+urlaub|automatische\s+antwort"
    r"|je\s+suis\s+(?:absent|en\s+cong|en\s+vacances|actuellement|en\s+d[ée]placement)|absent(?:e)?\s+du\s+bureau"
    r"|r[ée]ponse\s+automatique|message\s+automatique|en\s+cong[ée]s?"
    r"|(?:estoy|estar[ée])\s+(?:fuera|ausente|de\s+vacaciones)|fuera\s+de\s+la\s+oficina|respuesta\s+autom[áa]tica"
    r"|(?:sono|sar[òo])\s+(?:assente|fuori|in\s+ferie)|fuori\s+(?:sede|ufficio)|risposta\s+automatica"
    r"|ik\s+ben\s+(?:afwezig|met\s+vakantie|niet\s+aanwezig|tot)|afwezig|automatisch\s+antwoord"
    r"|(?:estou|estarei)\s+(?:ausente|fora|de\s+f[ée]rias)|fora\s+do\s+escrit[óo]rio|resposta\s+autom[áa]tica"
    r"|jag\s+[äa]r\s+(?:borta|ledig|p[åa]\s+semester|tj[äa]nstledig|fr[åa]nvarande)|fr[åa]nvarande"
    r"|jeg\s+er\s+(?:p[åa]\s+ferie|borte|fraværende|ikke\s+p[åa]\s+kontoret|p[åa]\s+kursus)|fraværende"
    r"|olen\s+(?:lomalla|poissa)|poissa\s+toimistolta"
    r"|jestem\s+(?:nieobecn|na\s+urlopie|poza\s+biurem)|nieobecn|poza\s+biurem"
    r"|jsem\s+(?:mimo|na\s+dovolen|nep[řr][íi]tomn)|nep[řr][íi]tomn"
    r"|(?:я\s+)?(?:нахожусь\s+в\s+отпуске|в\s+отпуске|отсутствую|буду\s+отсутствовать|нет\s+на\s+месте)"
    r"|автоматический\s+ответ|ofiste\s+de[ğg]ilim|izindeyim|otomatik\s+(?:yan[ıi]t|cevap)"
    r"|不在|休暇|外出|出張|自動応答|自動返信|自动回复|休假|不在办公室|自動回覆|부재중|휴가|자동\s*응답",
)
# The second half: when the person is back, who else to ask, or that the text is automatic.
VACATION_RETURN = Phrases(
    r"\b(?:until|till|through|returning|return(?:ing)?\s+on|back\s+(?:on|in\s+the\s+office|at\s+work)"
    r"|will\s+(?:be\s+)?(?:back|return|respond|reply|get\s+back|answer)|upon\s+my\s+return|when\s+i\s+(?:return|get\s+back|am\s+back)"
    r"|limited\s+(?:access|e-?mail)|urgent|in\s+my\s+absence|contact\s+my\s+colleague|please\s+contact"
    r"|automatic|automated)\b"
    r"|\bbis\b|zur[üu]ck|dringend|vertretung|wieder\s+(?:im\s+b|erreichbar|da)|r[ée]ponse|retour|urgen|jusqu|"
    r"hasta|regres|volver|urgente|fino\s+al|rientro|torner|tot\s+en\s+met|terug|dringend|at[ée]\s+|retorn|"
    r"till\s+och\s+med|tillbaka|br[åa]dskande|tilbage|tilbake|hastende|asti|takaisin|kiireellisiss|"
    r"do\s+dnia|powrot|pilne|do\s+\d|n[áa]vrat|nal[ée]hav|до\s+\d|вернусь|срочн|tarihine\s+kadar|acil|"
    r"まで|戻り|至|回来|返回|까지|복귀",
)
# What makes an absence an out-of-office text: a stand-in or an urgent contact, a reply promised
# for the return, limited access to mail, or the word automatic.
VACATION_CONFIRM = Phrases(
    r"urgen|emergenc|colleague|in\s+my\s+absence|limited\s+(?:access|e-?mail)|no\s+access\s+to\s+(?:my\s+)?e-?mail"
    r"|(?:respond|reply|answer|read|get\s+back)\s+(?:to\s+(?:your|it)\s+(?:\w+\s+)?)?(?:upon|on|when|after)\s+(?:my|i)\s*(?:return|get\s+back|am\s+back|come\s+back)"
    r"|(?:when|upon|after)\s+(?:my|i)\s*return|automat|auto[\s-]*(?:reply|response)"
    r"|(?:not|won't)\s+(?:be\s+)?(?:reading|checking|read)\s+(?:my\s+)?e?-?mail|l[äa]ser\s+inte|leser\s+ikke|l[æa]ser\s+ikke"
    r"|dringend|vertretung|eilige|keinen\s+zugriff|nach\s+meiner\s+r[üu]ckkehr"
    r"|(?:d')?urgence|mon\s+retour|[àa]\s+mon\s+retour|coll[èe]gue"
    r"|urgente|a\s+mi\s+regreso|compa[ñn]er|per\s+urgenze|al\s+mio\s+rientro|collega"
    r"|dringende|bij\s+mijn\s+terugkeer|urg[êe]ncia|no\s+meu\s+regresso|ao\s+meu\s+retorno"
    r"|br[åa]dskande|n[äa]r\s+jag\s+(?:kommer|[äa]r)\s+tillbaka|hastende|haster|tilbake|tilbage|kiireelli"
    r"|pilnych|pilne|po\s+powrocie|nal[ée]hav|po\s+n[áa]vratu|срочн|по\s+возвращении|acil"
    r"|不在にしております|戻り次第|緊急|急ぎ|紧急|回来后|긴급|복귀"
)
CHALLENGE_TEXT = Phrases(
    r"(?:spam|junk\s+(?:e-?)?mail|unsolicited)\W+(?:\w+\W+){0,25}?(?:verif|confirm|authori[sz]|approv|whitelist"
    r"|guest\s+list|allowed\s+senders?|click|reply\s+to\s+this)"
    r"|(?:verif|confirm|authori[sz]|approv)\w*\W+(?:\w+\W+){0,25}?(?:spam|junk\s+(?:e-?)?mail|unsolicited)"
    r"|verify\s+(?:that\s+)?you\s+are\s+(?:a\s+)?(?:real\s+)?(?:person|human)"
    r"|(?:approved|authori[sz]ed|allowed|trusted)\s+senders?\s+list|whitelist|white\s+list"
    r"|challenge[\s-]+response|sender\s+verification|one[\s-]+time\s+(?:verification|request)"
    r"|your\s+(?:message|e-?mail)\s+(?:is|has\s+been)\s+(?:being\s+)?held\s+(?:for|until|pending)"
    r"|(?:please|kindly)\s+(?:click|follow|visit)\s+(?:on\s+)?the\s+(?:link|url)\s+below\s+to\s+(?:verify|confirm|complete|deliver|release)",
)

# A bulk sender's JSON notice that a message was delivered: machine mail, but no failure.
DELIVERY_NOTICE = re.compile(r'\\?"notificationtype\\?"\s*:\s*\\?"delivery\\?"')
# Mailing-list managers (fml, Mailman, ezmlm, Majordomo, LISTSERV, Sympa) answering a post:
# a refusal is a bounce of that post; "held for approval" is an automatic reply.
LIST_REFUSAL = Phrases(
    r"not\s+(?:a\s+)?member|non-?member|loop\s+alert|duplicated\s+message-id|(?:post|message|posting)\s+"
    r"(?:was\s+|has\s+been\s+)?(?:rejected|refused|denied|not\s+accepted)|rejected\s+(?:post|message)|"
    r"you\s+are\s+not\s+(?:allowed|authori[sz]ed|subscribed)|members[\s-]only|not\s+subscribed",
)
LIST_HELD = Phrases(
    r"awaits?\s+moderator|held\s+for\s+(?:moderation|approval)|requires?\s+(?:moderator\s+)?approval|"
    r"waiting\s+for\s+(?:moderator|approval)|pending\s+moderation|moderation\s+request",
)
LIST_MANAGER_LOCAL = re.compile(
    r"^[\w.+-]*-(?:admin|owner|request|bounces?|ctl)@|^(?:owner-|majordomo@|listserv@|sympa@|mailman@|ezmlm@)", _I
)
