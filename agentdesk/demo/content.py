"""What the demo's customers write about, and how agents answer: a small, believable help desk.

"Northwind Bikes" sells e-bikes and parts online. Each scenario is a customer problem with an
opening message (long for email and web forms, short for SMS and chat), follow-ups and agent
replies. The builder combines them with generated names so 100 000 conversations stay varied.
"""

FIRST_NAMES = (
    "Aisha Ben Carla Dmitri Elena Farid Greta Hiro Ines Jonas Kemi Lars Maya Nadia Omar Priya "
    "Quentin Rosa Sven Tariq Uma Viktor Wen Xavier Yara Zoe Amara Bruno Chloe Diego Eva Felix "
    "Hana Ivan Julia Kofi Lea Mateo Nora Oskar Pia Rafael Sara Tomas Ugo Vera Willem Ximena "
    "Yusuf Zainab Anke Bram Cem Daan Emre Fleur Gijs Hugo Iris Joost"
).split()

LAST_NAMES = (
    "Okafor Jansen Silva Novak Rossi Haddad Berg Tanaka Costa Weber Adeyemi Nilsson Patel Khan "
    "Dubois Moreno Lindqvist Hussain Iyer Petrov Zhang Fischer Kowalski Mendes de-Vries Bakker "
    "Visser Smit Meijer Mulder Bos Vos Peters Hendriks Dekker Brouwer Kaya Yilmaz Nguyen Garcia"
).split()

ORGANIZATIONS = (
    "",
    "",
    "",
    "",
    "Velo Couriers",
    "GreenRide Rentals",
    "City of Utrecht",
    "Bakfiets & Co",
    "Campus Mobility",
    "Harbour Logistics",
    "Tandem Tours",
    "PedalPower Club",
)

TIERS = ("", "", "", "", "gold", "business")

TAGS = ("billing", "battery", "delivery", "warranty", "refund", "app", "vip", "repair", "order-change", "b2b")

# Each: (tag, subject, opening long, opening short, follow-ups, agent replies)
SCENARIOS = (
    (
        "delivery",
        "Where is my order #{order}?",
        "Hi,\n\nI ordered a {product} on {day} (order #{order}) and the tracking page has said "
        '"label created" for four days now. I planned to ride it to work next week. Could you '
        "tell me when it will actually ship?\n\nThanks,\n{first}",
        "Hi, order #{order} still says label created after 4 days. When does it ship?",
        (
            "Any news? The tracking page still hasn't changed.",
            "Thanks. Can you make sure the courier calls before they come? The doorbell is broken.",
            "It arrived today, all good. Thank you!",
        ),
        (
            "Hi {first},\n\nSorry for the wait. Your {product} left our warehouse this morning; the "
            "courier will deliver within two working days.\n\nBest,\n{agent}",
            "I've added a note for the courier to call you on arrival.",
        ),
    ),
    (
        "battery",
        "Battery drains overnight",
        "Hello,\n\nMy {product} battery goes from full to 60% overnight even when the bike is off. "
        "It is eight months old and I always charge it indoors. Is this a known issue? I have the "
        "serial number {serial} if you need it.\n\nRegards,\n{first} {last}",
        "My battery loses 40% overnight when the bike is off. Serial {serial}. Known issue?",
        (
            "I updated the firmware as you said, same result this morning.",
            "Sent the photos of the battery label. What happens next?",
        ),
        (
            "Hi {first},\n\nThat's more drain than it should have. Could you update the display "
            "firmware (Settings > About > Update) and check again tomorrow morning?\n\n{agent}",
            "Thanks for testing. This is covered by warranty; I've started a replacement and "
            "you'll get a prepaid return label by email.",
        ),
    ),
    (
        "billing",
        "Charged twice for one order",
        "Hi there,\n\nMy card statement shows two charges of {amount} EUR on {day} but I placed "
        "only one order (#{order}). Please refund the duplicate.\n\n{first}",
        "You charged my card twice for order #{order}, {amount} EUR each. Please refund one.",
        (
            "I still see both charges, it's been five days.",
            "Refund showed up today. Thanks for sorting it out.",
        ),
        (
            "Hi {first},\n\nYou're right, the payment provider retried after a timeout. I've "
            "refunded the second charge; banks usually show it within 3-5 working days.\n\n{agent}",
            "I checked with the provider: the refund was sent on {day}. Reference RF-{order}.",
        ),
    ),
    (
        "app",
        "App won't pair with my bike",
        'Hi,\n\nThe Northwind app keeps saying "no bike found" when I try to pair my {product}. '
        "Bluetooth is on, I'm on Android 14, and I've reinstalled the app twice.\n\nCheers,\n{first}",
        "App says no bike found when pairing. Android 14, reinstalled twice.",
        (
            "Tried holding the light button, still nothing.",
            "That worked! The location permission was off. Thanks.",
        ),
        (
            "Hi {first},\n\nCould you hold the light button for ten seconds until the display "
            "blinks, then pair again? Also check the app has location permission (Android needs "
            "it for Bluetooth scanning).\n\n{agent}",
        ),
    ),
    (
        "warranty",
        "Cracked rear rack",
        "Hello,\n\nThe weld on the rear rack of my {product} cracked after carrying a child seat "
        "(well under the 25 kg limit). Photos attached. Is this covered by the warranty?\n\n{first} {last}",
        "Rear rack weld cracked with a child seat on it. Covered by warranty?",
        (
            "Which dealer is closest to {city}?",
            "The dealer fitted the new rack today. Great service.",
        ),
        (
            "Hi {first},\n\nThanks for the photos. That's a manufacturing fault and fully covered. "
            "A dealer near you can swap the rack free of charge.\n\n{agent}",
            "The closest one is Fietsplus {city}; I've sent them your case so you don't need to explain again.",
        ),
    ),
    (
        "refund",
        "Return and refund for helmet",
        "Hi,\n\nThe helmet I ordered (#{order}) is too small. I'd like to return it for a refund "
        "rather than an exchange. How do I send it back?\n\nThanks,\n{first}",
        "Helmet from order #{order} too small, want to return for refund. How?",
        ("Dropped it off at the parcel point today.",),
        (
            "Hi {first},\n\nNo problem. I've emailed you a prepaid return label; the refund follows "
            "within 5 days of the parcel reaching us.\n\n{agent}",
        ),
    ),
    (
        "order-change",
        "Change delivery address",
        "Good morning,\n\nI just placed order #{order} but used my old address. Could you change "
        "delivery to {street}, {city} before it ships?\n\nKind regards,\n{first} {last}",
        "Can you change the address on order #{order} to {street}, {city}?",
        ("Great, thank you for the quick help.",),
        ("Hi {first},\n\nDone: order #{order} will go to {street}, {city}.\n\n{agent}",),
    ),
    (
        "repair",
        "Brakes squeal after service",
        "Hi,\n\nSince the 1000 km service last week the front brake on my {product} squeals loudly "
        "in the rain. Is that normal after new pads?\n\n{first}",
        "Front brake squeals in rain since last week's service. Normal with new pads?",
        ("Still squealing after 100 km.",),
        (
            "Hi {first},\n\nNew pads need 20-30 hard stops to bed in. If it still squeals after "
            "that, the workshop will clean the disc for free.\n\n{agent}",
        ),
    ),
    (
        "b2b",
        "Quote for 20 cargo bikes",
        "Dear Northwind team,\n\nWe are replacing our delivery vans in {city} and would like a "
        "quote for 20 {product}s with service contract, delivery in Q1. Could someone from your "
        "business team contact me?\n\nBest regards,\n{first} {last}\n{org}",
        "Looking for a quote for 20 cargo bikes incl. service, Q1 delivery. Who can I talk to?",
        (
            "Could you add the price for spare batteries to the quote?",
            "The board approved the order. What are the next steps?",
        ),
        (
            "Dear {first},\n\nThank you for thinking of us. I've attached our fleet price list; "
            "our business team will call you this week to discuss the service contract.\n\n{agent}",
        ),
    ),
    (
        "battery",
        "Charger not working",
        "Hi,\n\nMy charger's light stays red and the battery doesn't charge. I tried another socket. "
        "Bike: {product}, bought {day}.\n\n{first}",
        "Charger light stays red, battery won't charge. Tried another socket.",
        ("The second charger works, so it's the charger.",),
        (
            "Hi {first},\n\nA red light usually means the charger's fuse has gone. I'm sending a "
            "replacement charger today at no cost.\n\n{agent}",
        ),
    ),
)

PRODUCTS = ("Cityline 7", "Cargo Pro", "Trekking E5", "Fold S", "Urban Step", "Cargo Long")
CITIES = ("Utrecht", "Amsterdam", "Rotterdam", "Leiden", "Gent", "Antwerpen", "Haarlem", "Delft")
STREETS = ("Oudegracht 12", "Lange Nieuwstraat 40", "Vismarkt 3", "Kanaalweg 88", "Biltstraat 201")

NOTES = (
    "Customer was very patient; offer a discount code if this drags on.",
    "Checked the warehouse system: parcel is on the pallet for tomorrow.",
    "Same issue as AD-{other} last month, different customer. Escalated to product team.",
    "Called the customer, no answer. Try again after 14:00.",
    "Finance confirmed the duplicate charge in the payment provider dashboard.",
)

TEMPLATES = {
    "acknowledge": (
        "shortcut: ack\ndescription: We're on it",
        "Hi {{ customer_first_name }},\n\nThanks for getting in touch. I'm looking into this now and "
        "will get back to you by {{ due }}.\n\nBest,\n{{ agent_name }}\n",
    ),
    "receipt": (
        "description: Automatic receipt with the ETA",
        "Hi {{ customer_first_name }},\n\nWe received your message ({{ ref }}). A person from our "
        "team will answer by {{ due }}.\n{% if articles %}\nWhile you wait, these may help:\n{{ articles }}\n"
        "{% endif %}\nNorthwind Bikes support\n",
    ),
    "shipping-delay": (
        "shortcut: ship\ndescription: Order is delayed at the warehouse",
        "Hi {{ customer_first_name }},\n\nSorry for the wait. Your order is leaving our warehouse "
        "within one working day; you'll get the tracking link by email as soon as the courier "
        "scans it.\n\nBest,\n{{ agent_name }}\n",
    ),
    "refund-issued": (
        "shortcut: ref\ndescription: Refund has been sent",
        "Hi {{ customer_first_name }},\n\nI've issued the refund. Banks usually show it within 3-5 "
        "working days.\n\nBest,\n{{ agent_name }}\n",
    ),
    "battery-firmware": (
        "shortcut: fw\ndescription: Ask to update firmware for battery drain",
        "Hi {{ customer_first_name }},\n\nCould you update the display firmware (Settings > About > "
        "Update) and check the battery level again tomorrow morning? That fixes most overnight "
        "drain.\n\nBest,\n{{ agent_name }}\n",
    ),
    "warranty-approved": (
        "shortcut: war\ndescription: Warranty claim approved",
        "Hi {{ customer_first_name }},\n\nGood news: this is covered by the warranty. I'll send a "
        "prepaid return label so we can replace the part.\n\nBest,\n{{ agent_name }}\n",
    ),
    "app-pairing": (
        "shortcut: pair\ndescription: App pairing steps",
        "Hi {{ customer_first_name }},\n\nPlease hold the light button for ten seconds until the "
        "display blinks, then pair again. On Android the app also needs location permission for "
        "Bluetooth.\n\nBest,\n{{ agent_name }}\n",
    ),
    "solved-followup": (
        "shortcut: done\ndescription: Close with an invitation to reply",
        "Hi {{ customer_first_name }},\n\nGlad that's sorted. I'll close {{ ref }} now; just reply "
        "to this message if anything else comes up.\n\nBest,\n{{ agent_name }}\n",
    ),
}

# The knowledge base: (title, tags, public URL, body). Written to the demo's kb/ directory.
HELP = "https://help.northwind-bikes.example/articles/"
ARTICLES = {
    "battery-not-charging": (
        "Battery not charging",
        ("battery", "charging", "charger"),
        HELP + "battery-not-charging",
        "If the charger LED stays green and the battery level does not rise:\n\n"
        "1. Unplug the charger from the wall and the battery for 30 seconds.\n"
        "2. Check the charging port for grit or bent pins; clean it with a dry brush.\n"
        "3. Charge indoors at room temperature: below 5 °C the battery refuses to charge.\n"
        "4. Press the battery's power button: five LEDs blinking means it needs a reset "
        "(hold the button 10 seconds).\n\n"
        "Still not charging? Reply with the battery's serial number (NW…) and we arrange a check.",
    ),
    "battery-range-drain": (
        "Battery drains overnight or loses range",
        ("battery", "range", "firmware"),
        HELP + "battery-drain",
        "A battery that loses charge while parked is almost always the display staying awake.\n\n"
        "Update the display firmware (Settings > About > Update), then switch the bike off with the "
        "power button rather than the display. Range drops by up to 30 % in winter and with low tyre "
        "pressure; pump the tyres to the pressure printed on the sidewall.",
    ),
    "battery-storage-winter": (
        "Storing your e-bike battery over winter",
        ("battery", "winter", "storage"),
        HELP + "battery-winter",
        "Store the battery indoors at 10–20 °C, charged to 40–60 %. Top it up every two months. "
        "Never leave it on the charger for weeks, and never store it fully empty: a deep discharge "
        "is not covered by the warranty.",
    ),
    "track-your-order": (
        "Where is my order? Tracking and delivery times",
        ("delivery", "shipping", "order"),
        HELP + "track-your-order",
        "Bikes leave our warehouse within 2 working days; accessories the next working day. The "
        "tracking link arrives by email once the courier scans the parcel, which can take a day "
        'after "label created". Deliveries in the Netherlands and Belgium take 1–2 days, Germany '
        "and France 2–4 days.",
    ),
    "change-or-cancel-order": (
        "Changing or cancelling an order",
        ("order-change", "order", "cancel", "address"),
        HELP + "change-order",
        "You can change the delivery address, colour or frame size until the order ships: reply to "
        "your order confirmation with the change. Once shipped, refuse the delivery or use the free "
        "30-day return instead.",
    ),
    "returns-and-refunds": (
        "Returns and refunds",
        ("refund", "return", "billing"),
        HELP + "returns-and-refunds",
        "You have 30 days to return a bike or accessory, unused and in its box. Print the prepaid "
        "label from your account, drop the parcel at any courier point, and we refund within 5 "
        "working days of receiving it. Banks show the refund after 3–5 working days.",
    ),
    "double-charge": (
        "Charged twice for one order",
        ("billing", "payment", "refund"),
        HELP + "charged-twice",
        "A second charge is usually a reservation by your bank that disappears within 7 days. If "
        "both charges are still there after a week, reply with the last four digits of the card "
        "and the amounts; we refund the duplicate the same day.",
    ),
    "app-pairing": (
        "Pairing the Northwind app with your bike",
        ("app", "bluetooth", "pairing"),
        HELP + "app-pairing",
        'Hold the light button for ten seconds until the display blinks, then choose "Add bike" in '
        "the app. On Android, allow location access: Android needs it for Bluetooth. If the app "
        "still does not find the bike, remove it under Settings > Bluetooth and pair again.",
    ),
    "warranty-claims": (
        "Warranty: what is covered and how to claim",
        ("warranty", "repair", "frame"),
        HELP + "warranty",
        "Frames are covered for 10 years, motors and batteries for 2 years or 500 charge cycles. "
        "For a claim, send the serial number (NW… on the frame under the bottom bracket), photos of "
        "the part and your order number. We send a prepaid return label or book a service partner.",
    ),
    "book-a-repair": (
        "Booking a repair or service",
        ("repair", "service", "maintenance"),
        HELP + "book-a-repair",
        "Book a service at one of our partner workshops from your account: pick the workshop, the "
        "day and what needs doing. A first service after 500 km is free. Bring the key and the "
        "charger.",
    ),
    "brakes-squeak": (
        "Squeaking or weak brakes",
        ("brakes", "repair", "maintenance"),
        HELP + "brakes",
        "New disc brakes squeak until they are bedded in: brake firmly from 25 km/h to walking pace "
        "twenty times. Oil on the discs also squeaks: clean them with isopropyl alcohol. If the "
        "lever pulls to the handlebar, the brake needs bleeding at a workshop.",
    ),
    "business-leasing": (
        "Company bikes and leasing",
        ("b2b", "leasing", "invoice"),
        HELP + "business-leasing",
        "Companies order through their account manager and get one invoice a month with VAT "
        "shown. Leased bikes include service and theft insurance; the lease company handles "
        "claims, so send them the police report first.",
    ),
}

# What the survey asks (docs/csat-kb.md shows it as a template), and what customers answered in
# the demo's history of ratings. The demo has no mailbox to survey from, so it is not written
# to templates/, where it would be offered as a reply.
CSAT_TEMPLATE = (
    "description: Satisfaction survey, sent once a conversation stayed solved",
    'Hi {{ customer_first_name }},\n\nWe closed {{ ref }} ("{{ subject }}"). How did we do?\n\n'
    'Just reply with a number from 1 (bad) to 5 (great), or a word like "good" or "bad". '
    "Anything you add after it reaches the team.\n\nNorthwind Bikes support\n",
)
RATING_WEIGHTS = ((5, 46), (4, 24), (3, 10), (2, 11), (1, 9))
RATING_COMMENTS = {
    5: ("thanks!", "Super quick, thank you!", "Sam was really helpful.", "", "", "Great service 👍"),
    4: ("good, took a day though", "", "Fine, thanks.", "Helpful answer."),
    3: ("ok", "", "Took a while."),
    2: ("Took three emails to get an answer.", "The bike still rattles.", ""),
    1: ("Nobody read my first message.", "Still waiting for my refund.", ""),
}
